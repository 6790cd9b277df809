//! The Lua scripts the shared state runs inside Redis. Each runs atomically, so a limit's check and its count
//! are one step for every replica; each reads Redis's own clock (`TIME`), so replicas' clocks need not agree.

use redis::Script;

/// The scripts run inside Redis, each one atomic.
pub(super) struct Scripts {
    pub(super) admit: Script,
    pub(super) charge: Script,
    pub(super) observe: Script,
    pub(super) read: Script,
    pub(super) resync: Script,
    pub(super) learn: Script,
}

const NOW: &str =
    "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

impl Scripts {
    pub(super) fn new() -> Self {
        // KEYS: rpm zset, tpm zset, spend, health hash. ARGV: rpm, tpm, budget (-1: none), spends (1/0), member.
        // Returns the verdict ({0, now} or {refusal, now, details...}) and, in the same round trip, every
        // deployment's health.
        let admit = r"
local function admit()
  local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
  local spends = ARGV[4] == '1'
  if spends and budget >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
    if spent >= budget then return {3, now, tostring(spent)} end
  end
  local from = now - 60000
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', from)
    if redis.call('ZCARD', KEYS[1]) >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
      return {1, now, oldest[2]}
    end
  end
  if spends and tpm > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', from)
    local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    local used = 0
    for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], ':(%d+)$')) end
    if used >= tpm then
      local left = used
      for i = 1, #entries, 2 do
        left = left - tonumber(string.match(entries[i], ':(%d+)$'))
        if left < tpm then return {2, now, entries[i + 1], tostring(used)} end
      end
      return {2, now, tostring(now), tostring(used)}
    end
  end
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[5])
    redis.call('PEXPIRE', KEYS[1], 61000)
  end
  return {0, now}
end
return {admit(), redis.call('HGETALL', KEYS[4])}
";
        // KEYS: tpm zset, spend. ARGV: tokens (0: no tpm), cost, member, spend expiry (ms since epoch; 0: never),
        // budgeted (1/0).
        let charge = r"
local tokens = tonumber(ARGV[1])
if tokens > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if ARGV[5] == '1' then
  redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIREAT', KEYS[2], ARGV[4]) end
end
return 1
";
        // KEYS: health hash. ARGV: deployment, ok (1/0), ms, threshold, cooldown ms, weight.
        let observe = r"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local h = {fails = 0, cool_until = 0, err = 0, calls = 0}
if raw then h = cjson.decode(raw) end
local ok, ms, w = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[6])
h.calls = h.calls + 1
local cooled = 0
if ok then
  if h.lat then h.lat = h.lat + w * (ms - h.lat) else h.lat = ms end
  h.err = h.err + w * (0 - h.err)
  h.fails = 0
  h.cool_until = 0
else
  h.err = h.err + w * (1 - h.err)
  h.fails = h.fails + 1
  if h.fails >= tonumber(ARGV[4]) then
    h.cool_until = now + tonumber(ARGV[5])
    cooled = 1
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(h))
return cooled
";
        // KEYS: health hash, [pin]. ARGV: with health (1/0). Returns Redis's time, the health hash (empty
        // without), the pin (or nil).
        let read = r"
local pin = false
if #KEYS > 1 then pin = redis.call('GET', KEYS[2]) end
local health = {}
if ARGV[1] == '1' then health = redis.call('HGETALL', KEYS[1]) end
return {tostring(now), health, pin}
";
        // KEYS: spend. ARGV: this replica's spend for the period, spend Redis missed, expiry (0: never). Redis
        // without the counter (restarted empty) takes the replica's figure; with it, adds what it missed.
        let resync = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if tonumber(ARGV[2]) > 0 then redis.call('INCRBYFLOAT', KEYS[1], ARGV[2]) end
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
return 1
";
        // KEYS: a model's online cells (hash: domain -> "n successes predicted"). ARGV: half life, score,
        // predicted, then (domain, weight) pairs. Each cell's sums are discounted by 2^(-w/half_life), then the
        // observation is added: the same arithmetic as switchyard_core::Cell::observe, atomically for every
        // replica.
        let learn = r"
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
";
        let script = |body: &str| Script::new(&format!("{NOW}{body}"));
        Self {
            admit: script(admit),
            charge: script(charge),
            observe: script(observe),
            read: script(read),
            resync: script(resync),
            learn: script(learn),
        }
    }
}
