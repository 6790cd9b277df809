//! The Lua scripts of the shared online cells (see [`super`]): each runs atomically inside Redis.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: a model's online cells (hash: domain -> "n successes predicted"). ARGV: half life, score, predicted,
/// then (domain, weight) pairs. Each cell's sums are discounted by 2^(-w/half_life), then the observation is
/// added: the same arithmetic as switchyard_core::Cell::observe, atomically for every replica.
pub(super) static LEARN_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
local half, score, predicted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local domain, w = ARGV[i], tonumber(ARGV[i + 1])
  local n, s, p = 0, 0, 0
  local cell = redis.call('HGET', KEYS[1], domain)
  if cell then
    local a, b, c = string.match(cell, '(%S+) (%S+) (%S+)')
    n, s, p = tonumber(a), tonumber(b), tonumber(c)
  end
  local keep = 1
  if half > 0 then keep = math.pow(0.5, w / half) end
  n = n * keep + w
  s = s * keep + w * score
  p = p * keep + w * predicted
  redis.call('HSET', KEYS[1], domain, string.format('%.17g %.17g %.17g', n, s, p))
end
return 1
",
    )
});

/// KEYS: the model's cells, the request's counted score, the key's share windows. ARGV: half life, score,
/// predicted, the share (-1: none), κ, the window (ms), when the feedback arrived (ms since the epoch), until
/// when the request can be counted (ms since the epoch), then (domain, weight) pairs. Returns `{0, ''}`
/// (counted), `{1, 'previous-score first-counted-ms'}` (replaced), `{2, domain}` (over the key's share),
/// `{3, ''}` (counted over the window ago: not replaced), `{4, ''}` (a later score is counted) or `{5, ''}`
/// (too late to count).
const SCORE: &str = r"
local half, score, predicted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local share, kappa, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ts, deadline = tonumber(ARGV[7]), tonumber(ARGV[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function cell(domain)
  local c = redis.call('HGET', KEYS[1], domain)
  if not c then return 0, 0, 0 end
  local a, b, p = string.match(c, '(%S+) (%S+) (%S+)')
  return tonumber(a), tonumber(b), tonumber(p)
end
local function put(domain, n, s, p)
  redis.call('HSET', KEYS[1], domain, string.format('%.17g %.17g %.17g', n, s, p))
end
local function charge(cost, adds)
  if share < 0 then return nil end
  local windows = {}
  for i = 9, #ARGV, 2 do
    local domain, w = ARGV[i], tonumber(ARGV[i + 1])
    if w * cost > 0 then
      local n = cell(domain)
      local since, used = now, 0
      local entry = redis.call('HGET', KEYS[3], domain)
      if entry then
        local a, b = string.match(entry, '(%S+) (%S+)')
        if now - tonumber(a) < window then since, used = tonumber(a), tonumber(b) end
      end
      local room = kappa + n
      if adds then room = room + w end
      if used + w * cost > share * room + 1e-9 then return domain end
      windows[i] = string.format('%d %.17g', since, used + w * cost)
    end
  end
  local charged = false
  for i = 9, #ARGV, 2 do
    if windows[i] then
      redis.call('HSET', KEYS[3], ARGV[i], windows[i])
      charged = true
    end
  end
  if charged then redis.call('PEXPIRE', KEYS[3], window) end
  return nil
end
local previous = redis.call('GET', KEYS[2])
if previous then
  local old, since, counted = string.match(previous, '^(%S+) (%S+) (%S+)$')
  if old then
    old, since, counted = tonumber(old), tonumber(since), tonumber(counted)
  else
    old, since, counted = tonumber(previous), 0, now
  end
  if ts < since then return {4, ''} end
  if now - counted >= window then return {3, ''} end
  local delta = score - old
  local over = charge(math.abs(delta), false)
  if over then return {2, over} end
  for i = 9, #ARGV, 2 do
    local domain, w = ARGV[i], tonumber(ARGV[i + 1])
    local n, s, p = cell(domain)
    if n > 0 then put(domain, n, math.min(n, math.max(0, s + w * delta)), p) end
  end
  local left = redis.call('PTTL', KEYS[2])
  if left <= 0 then left = math.max(1, deadline - now) end
  redis.call('SET', KEYS[2], string.format('%.17g %d %d', score, ts, counted), 'PX', left)
  return {1, string.format('%.17g %d', old, counted)}
end
if now >= deadline then return {5, ''} end
local over = charge(1, true)
if over then return {2, over} end
for i = 9, #ARGV, 2 do
  local domain, w = ARGV[i], tonumber(ARGV[i + 1])
  local n, s, p = cell(domain)
  local keep = 1
  if half > 0 then keep = math.pow(0.5, w / half) end
  put(domain, n * keep + w, s * keep + w * score, p * keep + w * predicted)
end
redis.call('SET', KEYS[2], string.format('%.17g %d %d', score, ts, now), 'PX', deadline - now)
return {0, ''}
";

pub(super) static SCORE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCORE));
