#!/usr/bin/env python3
"""Convert the public routing data sets into switchyard labelled logs + catalogs, reproducibly.

Usage:  python3 scripts/import_data.py [--data DIR] [--out training-data] [SET ...]
        SET is one of llmrouter, zeroeval, routellm, routerarena, default (default: all, in that order;
        default is built from the converted zeroeval, routerarena and llmrouter sets, so convert those first).
        DIR is the folder holding the raw data sets (the project's shared data: llmrouter/, zeroeval/, ...).

For each set it writes training-data/<set>/:
  logs.jsonl.gz   labelled-log rows (the contract in README "Labelled logs"), each with a "split"
  catalog.toml    the set's models with USD list prices per million tokens and each price's source
  LICENSE         the upstream license, copied
  README.md       source, license, conversion rules, price sources, row counts
and also training-data/zeroeval/aggregates/ (ZeroEval's MMLU-Redux and ZebraLogic summaries, copied verbatim) and
training-data/default/profiles.toml (those summaries' accuracies for the default catalog's models).

Splits are by normalised prompt text (whitespace runs collapsed, ends trimmed, lower-cased; for chat rows the last
user turn), hashed with a fixed seed: rows that share a text share a side, within a set and across sets. Every run
checks this (and that all rows of one id share a side) and fails loudly if it does not hold.
Standard library only; gzip output has a fixed timestamp so reruns are byte-identical.
"""

import argparse
import csv
import gzip
import hashlib
import io
import json
import math
import re
import shutil
import sys
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

from prices import PRICES

SPLIT_SEED = "switchyard-split-v1"
TEST_PERCENT = 20
CHARS_PER_TOKEN = 4  # the usual English rule of thumb; used wherever a source has no token counts


def normalize_prompt(text: str) -> str:
    """A prompt's text as splits compare it: whitespace runs collapsed to one space, ends trimmed, lower-cased.
    The same rule as switchyard_core::normalize_prompt, which the tests and leakage checks use."""
    return " ".join(text.split()).lower()


def seeded_split(text: str) -> str:
    """A fixed split by normalised prompt text: 20% test, stable across runs and machines. Texts that differ only
    in spacing or case land on the same side, whichever set or id they come with."""
    key = normalize_prompt(text)
    h = int(hashlib.sha256(f"{SPLIT_SEED}:{key}".encode()).hexdigest()[:8], 16)
    return "test" if h % 100 < TEST_PERCENT else "train"


def row_text(row: dict) -> str:
    """The text a row's split is about: its `prompt`, or for chat rows the last non-empty user turn."""
    if "prompt" in row:
        return row["prompt"]
    return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "user" and m["content"].strip())


def check_splits(rows, where: str):
    """Fails loudly unless all rows of one id, and all rows of one normalised text, are on one side of the split."""
    by_id, by_text = {}, {}
    for row in rows:
        for seen, key, what in [(by_id, row["id"], "prompt id"), (by_text, normalize_prompt(row_text(row)), "text")]:
            side = seen.setdefault(key, row["split"])
            if side != row["split"]:
                raise AssertionError(f"{where}: {what} {key[:100]!r} has rows in both train and test")


def est_tokens(chars: int) -> int:
    return max(1, math.ceil(chars / CHARS_PER_TOKEN))


class SetWriter:
    """Collects one set's rows and models and writes its folder."""

    def __init__(self, out: Path, name: str):
        self.dir = out / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rows = []
        self.models = {}

    def add(self, row: dict):
        self.rows.append(row)

    def model(self, name: str, price_key: str = None, input_usd=None, output_usd=None, source=None):
        if input_usd is None:
            input_usd, output_usd, source = PRICES[price_key or name]
        self.models[name] = (input_usd, output_usd, source)

    def finish(self, readme: str, license_src: Path):
        check_splits(self.rows, self.dir.name)
        # Rows of one prompt sit together: readers see a prompt's evidence at once, and gzip shares its text.
        self.rows.sort(key=lambda r: (r["id"], r["model"]))
        raw = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            for row in self.rows:
                gz.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode())
        (self.dir / "logs.jsonl.gz").write_bytes(raw.getvalue())
        lines = ["# Models and USD list prices per million tokens; see README.md for each price's source.\n"]
        for name in sorted(self.models):
            i, o, src = self.models[name]
            lines.append(
                f'[[models]]\nname = {json.dumps(name)}\ninput_usd_per_mtok = {float(i)}\n'
                f'output_usd_per_mtok = {float(o)}\nprice_source = {json.dumps(src)}\n\n'
            )
        (self.dir / "catalog.toml").write_text("".join(lines).rstrip() + "\n")
        shutil.copyfile(license_src, self.dir / "LICENSE")
        (self.dir / "README.md").write_text(readme.strip() + "\n\n" + self.stats() + "\n")

    def stats(self) -> str:
        by_split = Counter(r.get("split") for r in self.rows)
        prompts = {r["id"] for r in self.rows}
        texts = {normalize_prompt(row_text(r)): r["split"] for r in self.rows}
        test_texts = sum(s == "test" for s in texts.values())
        per_model = defaultdict(list)
        for r in self.rows:
            if "score" in r:
                per_model[r["model"]].append(r["score"])
        domains = Counter(r.get("domain") for r in self.rows if r.get("domain"))
        out = [
            "## Contents (generated)",
            f"- {len(self.rows)} rows, {len(prompts)} prompts, {len(self.models)} models; "
            f"split: {by_split.get('train', 0)} train rows, {by_split.get('test', 0)} test rows.",
            f"- {len(texts)} distinct prompt texts (normalised), {test_texts} of them "
            f"({100 * test_texts / len(texts):.1f}%) in the test split.",
            f"- domains (rows): {', '.join(f'{d} {n}' for d, n in sorted(domains.items()))}",
            "",
            "| model | rows | mean score | input $/Mtok | output $/Mtok | price source |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name in sorted(self.models, key=lambda m: -sum(per_model[m]) / max(1, len(per_model[m]))):
            s = per_model[name]
            i, o, src = self.models[name]
            mean = f"{sum(s) / len(s):.3f}" if s else "n/a"
            out.append(f"| {name} | {len(s)} | {mean} | {i} | {o} | {src} |")
        return "\n".join(out)


# ---------------------------------------------------------------- LLMRouter

LLMROUTER_DOMAINS = {
    "math": "math", "gsm8k": "math", "agentverse-mgsm": "math",
    "mbpp": "code", "human_eval": "code",
    "natural_qa": "knowledge", "trivia_qa": "knowledge", "mmlu": "knowledge",
    "commonsense_qa": "reasoning", "openbook_qa": "reasoning", "arc_challenge": "reasoning",
    "agentverse-logicgrid": "reasoning",
    "gpqa": "science",
    "commongen": "writing",
}


def import_llmrouter(data: Path, out: Path):
    src = data / "llmrouter"
    tasks = {}
    for name in ["default_query_train.jsonl", "default_query_test.jsonl"]:
        for line in open(src / "example_data/query_data" / name, encoding="utf-8"):
            q = json.loads(line)
            tasks.setdefault(q["query"], q["task_name"])
    llms = json.load(open(src / "example_data/llm_candidates/default_llm.json", encoding="utf-8"))
    w = SetWriter(out, "llmrouter")
    missing_task = 0
    owner_texts = {}  # LLMRouter's own split -> its normalised texts, to report how much it leaked
    for part in ["train", "test"]:
        items = json.load(open(src / "dcrouter_preprocessed" / f"{part}.json", encoding="utf-8"))
        owner_texts[part] = [normalize_prompt(item["question"]) for item in items]
        for name in sorted({m for item in items for m in item["scores"]}):
            card = llms[name]
            w.model(name, input_usd=card["input_price"], output_usd=card["output_price"],
                    source=f"LLMRouter default_llm.json ({card.get('service', 'provider')} price)")
        for n, item in enumerate(items):
            prompt = item["question"]
            task = tasks.get(prompt)
            missing_task += task is None
            pid = f"llmrouter-{part}-{n}"  # where the item sits upstream; not its split here
            split = seeded_split(prompt)
            for model, score in sorted(item["scores"].items()):
                row = {"id": pid, "prompt": prompt, "model": model, "score": float(score), "split": split,
                       "input_tokens": est_tokens(len(prompt)), "output_tokens": 256}
                if task:
                    row["domain"] = LLMROUTER_DOMAINS[task]
                    row["task"] = task
                w.add(row)
    owner_train = set(owner_texts["train"])
    owner_leaked = sum(t in owner_train for t in owner_texts["test"])
    w.finish(f"""
# LLMRouter: 9 open models on 6,108 queries from 14 tasks

Source: LLMRouter (ulab-uiuc), `data/dcrouter_preprocessed/{{train,test}}.json` (per-model scores) and
`data/example_data` (task names, prices), commit 4e7a796942ce26e9d5f2b93191c7c2585c99c2e3. License: MIT
(`LICENSE`, copied). Converted by `scripts/import_data.py llmrouter`.

- One outcome row per (query, model); `score` is LLMRouter's per-model score (mostly 0/1, some F1/EM fractions).
- `split` is a fixed seeded split by normalised prompt text ({TEST_PERCENT}% test, sha256 of "{SPLIT_SEED}:<text>"
  with whitespace runs collapsed and lower-cased), not LLMRouter's own train/test split: the owner's split is by
  item and put identical query texts on both sides ({owner_leaked} of its {len(owner_texts["test"])} test queries
  also appear in its train file), so evaluating on it was optimistic. All rows of one text are now on one side.
  Prompt ids still name the upstream file and position (`llmrouter-train-<n>` is item n of `train.json`),
  whichever side the row is on now.
- `domain` joins the query text to LLMRouter's task names ({missing_task} queries had no task), mapped to coarse
  domains: {', '.join(f'{k}->{v}' for k, v in sorted(LLMROUTER_DOMAINS.items()))}; the original task is in
  `task`.
- Costs: LLMRouter's own per-model prices. The data has no token counts: `input_tokens` is estimated as
  characters / {CHARS_PER_TOKEN}, and `output_tokens` is assumed to be 256 for every call (so relative costs between
  models follow their prices).
""", src / "LICENSE")


# ---------------------------------------------------------------- ZeroEval

ZEROEVAL_COMMIT = "570c6269a2e4930ee06a17e713fece1ba52cf1dd"
# Aggregate-only results (no per-item rows): copied verbatim to training-data/zeroeval/aggregates/.
ZEROEVAL_AGGREGATES = {"mmlu-redux": "mmlu-redux.summary.official.json",
                       "zebra-grid": "zebra-grid.summary.official.json"}


def import_zeroeval(data: Path, out: Path):
    src = data / "zeroeval"
    w = SetWriter(out, "zeroeval")
    (w.dir / "aggregates").mkdir(exist_ok=True)
    aggregates = {}
    for name, file in ZEROEVAL_AGGREGATES.items():
        shutil.copyfile(src / file, w.dir / "aggregates" / file)
        aggregates[name] = json.load(open(src / file, encoding="utf-8"))
    mmlu_models, zebra_models = ({r["Model"] for r in aggregates[name]} for name in ["mmlu-redux", "zebra-grid"])
    for set_name, domain in [("gsm", "math"), ("math-l5", "math")]:
        items = {r["id"]: r for r in csv.DictReader(open(src / f"{set_name}_items.csv", encoding="utf-8"))}
        for r in csv.DictReader(open(src / f"{set_name}_results_long.csv", encoding="utf-8")):
            item = items[r["id"]]
            w.model(r["model"])
            w.add({"id": f"zeroeval-{r['id']}", "prompt": item["question"], "model": r["model"],
                   "score": float(r["correct"]), "domain": domain, "task": set_name,
                   "split": seeded_split(item["question"]), "input_tokens": est_tokens(len(item["question"])),
                   "output_tokens": est_tokens(int(r["output_chars"]))})
    w.finish(f"""
# ZeroEval: 40+ frontier and open models on GSM8K and MATH level 5

Source: ZeroEval (yuchenlin), `result_dirs/{{gsm,math-l5}}`, commit {ZEROEVAL_COMMIT};
per-item correctness recomputed with ZeroEval's own answer extraction (matches its official summaries).
License: Apache-2.0 (`LICENSE`, copied); GSM8K and MATH are MIT. Converted by `scripts/import_data.py zeroeval`.

- One outcome row per (item, model); `score` is 1 if the extracted answer is correct, else 0.
- No split in the source: a fixed seeded split by normalised question text ({TEST_PERCENT}% test, sha256 of
  "{SPLIT_SEED}:<text>" with whitespace runs collapsed and lower-cased), so every model's row of one
  item is on the same side, and a question that also appears in another set (e.g. RouteLLM's GSM8K) is on the
  same side there.
- `domain` is `math` for both sets; `task` is `gsm` or `math-l5`.
- Costs: public list prices per million tokens (table below; sources in `scripts/prices.py`), with
  `output_tokens` = output characters / {CHARS_PER_TOKEN} and `input_tokens` = question characters / {CHARS_PER_TOKEN}
  (ZeroEval's prompt template adds a constant the estimate leaves out).

## Aggregates (`aggregates/`)

ZeroEval's official summaries for two sets with no per-item rows, copied verbatim from the same source (ZeroEval,
commit {ZEROEVAL_COMMIT}; Apache-2.0, covered by `LICENSE` here):

- `aggregates/{ZEROEVAL_AGGREGATES["mmlu-redux"]}`: MMLU-Redux (2,778 questions over many subjects), accuracy
  (`Acc`, percent) of {len(mmlu_models)} models.
- `aggregates/{ZEROEVAL_AGGREGATES["zebra-grid"]}`: ZebraLogic grid puzzles (1,000 puzzles), puzzle, cell,
  easy- and hard-puzzle accuracy (percent) of {len(zebra_models)} models ({len(aggregates["zebra-grid"])} entries:
  some models have a `greedy` and a `sampling` run).

They are per-model priors, not training rows: `../default/profiles.toml` turns them into fractions for the default
catalog's models.
""", src / "LICENSE")


# ---------------------------------------------------------------- MMLU-Pro

MMLU_PRO_PRICE_KEYS = {"command-r": "command-r-v01"}
# MMLU-Pro's 14 categories in the default set's domain vocabulary (the mmlu-pro set keeps the categories).
MMLU_PRO_DOMAINS = {"biology": "science", "chemistry": "science", "physics": "science", "engineering": "science",
                    "computer science": "code", "business": "finance", "economics": "finance", "health": "medicine",
                    "history": "humanities", "philosophy": "humanities", "psychology": "humanities",
                    "law": "law", "math": "math", "other": "knowledge"}


def mmlu_pro_prompt(q: dict) -> str:
    """What a router sees of an MMLU-Pro question: the question, then the lettered options one per line."""
    letters = "ABCDEFGHIJKLMNOP"
    return q["question"] + "\n" + "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(q["options"]))


def import_mmlu_pro(data: Path, out: Path):
    src = data / "mmlu-pro"
    with gzip.open(src / "questions.jsonl.gz", "rt", encoding="utf-8") as f:
        questions = {q["id"]: q for q in map(json.loads, f)}
    w = SetWriter(out, "mmlu-pro")
    with gzip.open(src / "outcomes.csv.gz", "rt", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            q = questions[int(r["question_id"])]
            prompt = mmlu_pro_prompt(q)
            w.model(r["model"], MMLU_PRO_PRICE_KEYS.get(r["model"], r["model"]))
            w.add({"id": f"mmlu-pro-{q['id']}", "prompt": prompt, "model": r["model"], "score": float(r["correct"]),
                   "domain": q["category"], "task": q["src"], "split": seeded_split(prompt),
                   "input_tokens": est_tokens(len(prompt)), "output_tokens": est_tokens(int(r["response_chars"]))})
    w.finish(f"""
# MMLU-Pro: 15 instruct models on broad-domain exam questions (14 categories)

Source: MMLU-Pro (TIGER-AI-Lab), per-question outcomes derived from the model outputs its authors published
(5-shot chain-of-thought runs; commits f418b116db00b065c2aea046518d8fcf74d39872 and
ff991b5b7f14a383fd41da3987447ab6c08bf138; the raw set's README lists each model's file). License: Apache-2.0
(`LICENSE`, copied). This is the shared 75% of the questions; a quarter is kept back by the data's owner for
evaluation and is not here. Converted by `scripts/import_data.py mmlu-pro`.

- One outcome row per (question, model); `score` is 1 when the answer letter extracted from the response equals
  the gold letter, else 0 (an answer that could not be extracted counts as wrong).
- `prompt` is the question followed by its lettered options, one per line (`A. ...`), as a router would see it.
- Split: a fixed seeded split by normalised prompt text ({TEST_PERCENT}% test, as every other set), not the
  owner's 75/25 one.
- `domain` is the MMLU-Pro category; `task` its original source (`ori_mmlu-...`, `stemez-...`, `theoremQA-...`,
  `scibench-...`).
- Costs: public list prices per million tokens (table below; sources in `scripts/prices.py`), with
  `output_tokens` = response characters / {CHARS_PER_TOKEN} and `input_tokens` = prompt characters / {CHARS_PER_TOKEN} (the
  5-shot examples the harness prepended are not counted: a router's traffic has none).
- Model versions are the ones run: `gpt-4o-2024-05-13` (priced at its own launch price), `gemini-1.5-*-002`,
  `deepseek-chat-v2` (DeepSeek-V2 chat, May 2024), `command-r` (c4ai-command-r-v01, priced at its launch price).
""", src / "LICENSE")


# ---------------------------------------------------------------- RouteLLM

ROUTELLM_MODELS = {"gpt-4-1106-preview": "gpt-4-1106-preview",
                   "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b-instruct-v0.1"}
MT_DOMAINS = {"writing": "writing", "roleplay": "writing", "reasoning": "reasoning", "math": "math",
              "coding": "code", "extraction": "extraction", "stem": "science", "humanities": "humanities"}


def assistant_turns(judge_prompt: str):
    """The assistant's answers inside an MT-Bench judge prompt (one for turn 1, two for turn 2)."""
    m = re.search(r"\[The Start of Assistant's Answer\]\n(.*)\n\[The End of Assistant's Answer\]", judge_prompt, re.S)
    if m:
        return [m.group(1)]
    body = judge_prompt.split("<|The Start of Assistant A's Conversation with User|>", 1)[-1]
    body = body.split("<|The End of Assistant A's Conversation with User|>", 1)[0]
    return [part.split("\n\n### User:", 1)[0].strip() for part in body.split("### Assistant A:\n")[1:]]


def import_routellm(data: Path, out: Path):
    src = data / "routellm"
    w = SetWriter(out, "routellm")
    for name in ROUTELLM_MODELS.values():
        w.model(name)
    contaminated = set()
    for sub in ["gsm8k", "mt_bench"]:
        for line in open(src / sub / "contaminated_prompts.jsonl", encoding="utf-8"):
            d = json.loads(line)
            contaminated.add(d.get("eval_prompt") or d.get("prompt") or "")
    for n, r in enumerate(csv.DictReader(open(src / "gsm8k/gsm8k_responses.csv", encoding="utf-8"))):
        pid = f"routellm-gsm8k-{n}"
        for raw, name in ROUTELLM_MODELS.items():
            row = {"id": pid, "prompt": r["prompt"], "model": name, "score": 1.0 if r[raw] == "True" else 0.0,
                   "domain": "math", "task": "gsm8k", "split": seeded_split(r["prompt"]),
                   "input_tokens": est_tokens(len(r["prompt"])), "output_tokens": est_tokens(len(r[raw + "_response"]))}
            if r["prompt"] in contaminated:
                row["contaminated"] = True
            w.add(row)
    questions = {}
    for line in open(src / "mt_bench/question.jsonl", encoding="utf-8"):
        q = json.loads(line)
        questions[q["question_id"]] = q
    judgements = [json.loads(line) for line in open(src / "mt_bench/judgements.jsonl", encoding="utf-8")]
    for j in sorted(judgements, key=lambda j: (j["question_id"], j["turn"], j["model"])):
        q = questions[j["question_id"]]
        name = ROUTELLM_MODELS[j["model"]]
        answers = assistant_turns(j["user_prompt"])
        qid = f"routellm-mtbench-{j['question_id']}"
        row = {"id": f"{qid}-turn{j['turn']}", "model": name, "score": round((float(j["score"]) - 1) / 9, 6),
               "domain": MT_DOMAINS[q["category"]], "task": f"mt-bench-{q['category']}",
               "split": seeded_split(q["turns"][0]),  # both turns on the turn-1 question's side
               "output_tokens": est_tokens(len(answers[-1]) if answers else 0)}
        if j["turn"] == 1:
            row["prompt"] = q["turns"][0]
            row["input_tokens"] = est_tokens(len(q["turns"][0]))
        else:
            row["messages"] = [{"role": "user", "content": q["turns"][0]},
                               {"role": "assistant", "content": answers[0]},
                               {"role": "user", "content": q["turns"][1]}]
            row["input_tokens"] = est_tokens(sum(len(m["content"]) for m in row["messages"]))
        if q["turns"][0] in contaminated:
            row["contaminated"] = True
        w.add(row)
    w.finish(f"""
# RouteLLM: GPT-4 vs Mixtral on GSM8K and MT-Bench

Source: RouteLLM (lm-sys), `routellm/evals/{{gsm8k,mt_bench}}`, commit 0b64fdafe049e596a3f5657c219329f24af24198.
License: Apache-2.0 (`LICENSE`, copied). Converted by `scripts/import_data.py routellm`.

- Models: `gpt-4-1106-preview` (strong) and `mixtral-8x7b-instruct-v0.1` (weak; upstream name
  mistralai/Mixtral-8x7B-Instruct-v0.1).
- GSM8K (1,319 prompts): `score` 1 if RouteLLM marked the answer correct, else 0; `output_tokens` from the
  response length / {CHARS_PER_TOKEN}.
- MT-Bench (80 questions x 2 turns): GPT-4 judge scores 1-10 rescaled to [0, 1] as (score - 1) / 9. Turn-1 rows
  carry `prompt`; turn-2 rows carry `messages` (turn-1 question, that model's own turn-1 answer recovered from the
  judge prompt, turn-2 question), so the router reads the turn-2 question. `domain` maps MT-Bench categories:
  {', '.join(f'{k}->{v}' for k, v in MT_DOMAINS.items())}.
- No split in the source: a fixed seeded split by normalised prompt text ({TEST_PERCENT}% test, sha256 of
  "{SPLIT_SEED}:<text>" with whitespace runs collapsed and lower-cased). Both turns of an MT-Bench
  question share a side: both are keyed on the turn-1 question's text.
- Rows whose prompt RouteLLM lists as contaminated (found in its own router training data) have
  `"contaminated": true`; drop them to compare with RouteLLM's published numbers.
""", src / "LICENSE")


# ---------------------------------------------------------------- RouterArena

ARENA_DOMAINS = [
    (r"^(AIME|GSM8K|MATH|MathQA|AsDiv|MMLUPro_math|OpenTDB_Science: Mathematics)", "math"),
    (r"^(LiveCodeBench|MMLUPro_computer science|OpenTDB_Science: Computers)", "code"),
    (r"^MMLUPro_law", "law"),
    (r"^(PubMedQA|MedMCQA|MMLUPro_health)", "medicine"),
    (r"^(MMLUPro_(biology|chemistry|physics|engineering)|QANTA_Science|OpenTDB_Science & Nature)", "science"),
    (r"^(FinQA|MMLUPro_(business|economics)|MMLU_management)", "finance"),
    (r"^WMT19", "translation"),
    (r"^(Ethics|MMLU_formal_logic|SuperGLUE|SocialiQA|ChessInstruct|MMLUPro_(philosophy|psychology))", "reasoning"),
    (r"^(NarrativeQA)", "reading"),
    (r"^(GeoBench|GeoGraphyData|QANTA_Geography|OpenTDB_Geography)", "geography"),
    (r"^(MMLUPro_history|QANTA_(History|Literature|Fine Arts|Philosophy|Social Science)|OpenTDB_History|ArcMMLU|MusicTheoryBench)", "humanities"),
    (r"^OpenTDB", "trivia"),
]


def arena_domain(group: str) -> str:
    for pattern, domain in ARENA_DOMAINS:
        if re.match(pattern, group):
            return domain
    raise ValueError(f"RouterArena group {group!r} has no domain mapping")


def import_routerarena(data: Path, out: Path):
    src = data / "routerarena"
    costs = json.load(open(src / "cost.json", encoding="utf-8"))
    w = SetWriter(out, "routerarena")
    for name in ["claude-3-haiku-20240307", "gemini-2.0-flash-001"]:
        c = costs[name]
        w.model(name, input_usd=c["input_token_price_per_million"], output_usd=c["output_token_price_per_million"],
                source="RouterArena model_cost/cost.json")
        for line in open(src / f"{name}.jsonl", encoding="utf-8"):
            d = json.loads(line)
            group = re.sub(r"_\d+$", "", d["global_index"])
            ev = d["evaluation_result"]
            usage = d.get("token_usage") or {}
            w.add({"id": f"routerarena-{d['global_index']}", "prompt": d["question"], "model": name,
                   "score": min(1.0, max(0.0, float(ev["score"]))), "cost_usd": float(ev["inference_cost"]),
                   "input_tokens": usage.get("input_tokens"), "output_tokens": usage.get("output_tokens"),
                   "domain": arena_domain(group), "task": group, "split": seeded_split(d["question"])})
    w.finish(f"""
# RouterArena: Claude 3 Haiku vs Gemini 2.0 Flash on 809 queries from ~60 dataset/subject groups

Source: RouterArena (RouteWorks), `cached_results/*.jsonl` and `model_cost/cost.json`, commit
4714a9ad73e897a1241e73a86c9297fed2e871d8. License: Apache-2.0 (`LICENSE`, copied). Converted by
`scripts/import_data.py routerarena`.

- One outcome row per (query, model) with RouterArena's `score` (0/1, except METEOR scores for NarrativeQA and WMT19,
  which are fractional; the few slightly negative METEOR values are clamped to 0), the observed `cost_usd` of the call and its
  token counts.
- `task` is the dataset/subject group from `global_index` (e.g. `MMLUPro_law`); `domain` maps groups to coarse
  domains (math, code, law, medicine, science, finance, translation, reasoning, reading, geography, humanities,
  trivia) by the patterns in `scripts/import_data.py`.
- No split in the source: a fixed seeded split by normalised question text ({TEST_PERCENT}% test, sha256 of
  "{SPLIT_SEED}:<text>" with whitespace runs collapsed and lower-cased).
- Prices: RouterArena's `cost.json`.
""", src / "LICENSE")


# ---------------------------------------------------------------- default router data

# canonical name -> [(set, model name in that set)], with the price key in scripts/prices.py
DEFAULT_MODELS = {
    "gpt-4o": ([("zeroeval", "gpt-4o-2024-08-06"), ("mmlu-pro", "gpt-4o-2024-05-13")], "gpt-4o-2024-08-06"),
    "gpt-4o-mini": ([("zeroeval", "gpt-4o-mini-2024-07-18")], "gpt-4o-mini-2024-07-18"),
    "o1-mini": ([("zeroeval", "o1-mini-2024-09-12")], "o1-mini-2024-09-12"),
    "claude-3-5-sonnet": ([("zeroeval", "claude-3-5-sonnet-20240620")], "claude-3-5-sonnet-20240620"),
    "claude-3-haiku": ([("zeroeval", "claude-3-haiku-20240307"), ("routerarena", "claude-3-haiku-20240307")],
                       "claude-3-haiku-20240307"),
    "gemini-1.5-pro": ([("zeroeval", "gemini-1.5-pro"), ("mmlu-pro", "gemini-1.5-pro-002")], "gemini-1.5-pro"),
    "gemini-1.5-flash": ([("zeroeval", "gemini-1.5-flash"), ("mmlu-pro", "gemini-1.5-flash-002")],
                         "gemini-1.5-flash"),
    "gemini-2.0-flash": ([("routerarena", "gemini-2.0-flash-001")], None),
    "llama-3.1-405b-instruct": ([("zeroeval", "Llama-3.1-405B-Inst@sambanova")], "Llama-3.1-405B-Inst@sambanova"),
    "llama-3.1-70b-instruct": ([("zeroeval", "Meta-Llama-3.1-70B-Instruct"), ("mmlu-pro", "llama-3.1-70b-instruct")],
                               "Meta-Llama-3.1-70B-Instruct"),
    "llama-3.1-8b-instruct": ([("zeroeval", "Meta-Llama-3.1-8B-Instruct"), ("llmrouter", "llama-3.1-8b-instruct"),
                               ("mmlu-pro", "llama-3.1-8b-instruct")], "Meta-Llama-3.1-8B-Instruct"),
    "mistral-large": ([("zeroeval", "Mistral-Large-2")], "Mistral-Large-2"),
    "deepseek-v2.5": ([("zeroeval", "deepseek-v2.5-0908"), ("mmlu-pro", "deepseek-chat-v2")], "deepseek-v2.5-0908"),
    "qwen2.5-7b-instruct": ([("zeroeval", "Qwen2.5-7B-Instruct"), ("llmrouter", "qwen2.5-7b-instruct")],
                            "Qwen2.5-7B-Instruct"),
    "gemma-2-9b-it": ([("zeroeval", "gemma-2-9b-it"), ("llmrouter", "gemma-2-9b-it")], "gemma-2-9b-it"),
}


# profiles.toml key -> (aggregate, field in its summary); percent strings there, fractions in profiles.toml
PROFILE_FIELDS = {"mmlu_redux": ("mmlu-redux", "Acc"), "zebra_puzzle": ("zebra-grid", "Puzzle Acc"),
                  "zebra_easy": ("zebra-grid", "Easy Puzzle Acc"), "zebra_hard": ("zebra-grid", "Hard Puzzle Acc"),
                  "zebra_cell": ("zebra-grid", "Cell Acc")}


def write_profiles(out: Path, models) -> list:
    """training-data/default/profiles.toml: each default model's ZeroEval aggregate accuracies, looked up under its
    ZeroEval source name (greedy decoding, ZeroEval's standard mode). Values a model lacks are left out, and a model
    with none (no ZeroEval source, or in neither summary) has no profile. Returns the models without a profile."""
    summaries = {}
    for name, file in ZEROEVAL_AGGREGATES.items():
        path = out / "zeroeval" / "aggregates" / file
        if not path.exists():
            sys.exit(f"error: {path} is missing; convert zeroeval first (scripts/import_data.py zeroeval)")
        greedy = [r for r in json.load(open(path, encoding="utf-8")) if r["Mode"] == "greedy"]
        summaries[name] = {r["Model"]: r for r in greedy}
        if len(summaries[name]) != len(greedy):
            raise AssertionError(f"{file}: a model has two greedy entries")
    lines = ["# Per-model aggregate accuracies (fractions in [0, 1]) from ZeroEval's official summaries; "
             "see README.md.\n"]
    missing = []
    for model in sorted(models):
        source = next((m for s, m in DEFAULT_MODELS[model][0] if s == "zeroeval"), None)
        values = {}
        for key, (name, field) in PROFILE_FIELDS.items():
            entry = summaries[name].get(source)
            if entry is not None:
                value = round(Decimal(entry[field]) / 100, 4)
                if not 0 <= value <= 1:
                    raise AssertionError(f"{name}: {source} {field} = {entry[field]} is not a percentage")
                values[key] = float(value)
        if not values:
            missing.append(model)
            continue
        lines.append(f"[[profiles]]\nmodel = {json.dumps(model)}\nsource_model = {json.dumps(source)}\n")
        lines += [f"{key} = {value}\n" for key, value in values.items()]
        lines.append(f'source = "ZeroEval mmlu-redux and zebra-grid summaries, commit {ZEROEVAL_COMMIT}"\n\n')
    (out / "default" / "profiles.toml").write_text("".join(lines).rstrip() + "\n")
    return missing


def import_default(data: Path, out: Path):
    """The default router's data: the converted sets' rows for a catalog of current API models, renamed."""
    rename = {}
    for canonical, (sources, _) in DEFAULT_MODELS.items():
        for set_name, model in sources:
            rename[(set_name, model)] = canonical
    w = SetWriter(out, "default")
    w.model("gemini-2.0-flash", input_usd=0.1, output_usd=0.4, source="RouterArena cost.json (gemini-2.0-flash-001)")
    for canonical, (_, price_key) in DEFAULT_MODELS.items():
        if price_key:
            w.model(canonical, price_key)
    for set_name in ["zeroeval", "routerarena", "llmrouter", "mmlu-pro"]:
        path = out / set_name / "logs.jsonl.gz"
        if not path.exists():
            sys.exit(f"error: {path} is missing; convert {set_name} first (scripts/import_data.py {set_name})")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                name = rename.get((set_name, row["model"]))
                if name:
                    row["source_model"] = f"{set_name}:{row['model']}"
                    row["source"] = set_name
                    row["model"] = name
                    if set_name == "mmlu-pro":
                        row["domain"] = MMLU_PRO_DOMAINS[row["domain"]]
                    if set_name != "routerarena":
                        row.pop("cost_usd", None)
                    w.add(row)
    no_profile = write_profiles(out, w.models)
    mapping = "\n".join(
        f"| {c} | {', '.join(f'{s}:{m}' for s, m in src)} |" for c, (src, _) in DEFAULT_MODELS.items())
    w.finish(f"""
# Default router data: 15 current API models, from every converted set that covers them

Built by `scripts/import_data.py default` from `training-data/{{zeroeval,routerarena,llmrouter,mmlu-pro}}` (see
their READMEs for sources and licenses: Apache-2.0, Apache-2.0, MIT, Apache-2.0; `LICENSE` here is Apache-2.0, and
`../llmrouter/LICENSE` covers the LLMRouter rows). Rows keep their set's split, prompt ids and token counts; the
model is renamed to a canonical name, `source` names the set a row comes from (training fits one offset per source,
which absorbs different grading), and `source_model` says which model of that set it was. Every set splits by
normalised prompt text, so a text that comes from two sets (e.g. a GSM8K question in ZeroEval and LLMRouter) is on
the same side in both, and no normalised text here has rows on both sides of the split. MMLU-Pro's 14 categories
are mapped onto this set's domains (biology, chemistry, physics, engineering: science; computer science: code;
business, economics: finance; health: medicine; history, philosophy, psychology: humanities; other: knowledge); the
category stays in the row's `task`.

| model | rows from |
| --- | --- |
{mapping}

**What the mapping assumes.** A catalog name stands for a model family's API product, and the sets ran different
releases of it: `gpt-4o` is gpt-4o-2024-08-06 in ZeroEval and gpt-4o-2024-05-13 in MMLU-Pro; `gemini-1.5-pro` and
`gemini-1.5-flash` are the 002 releases in MMLU-Pro (ZeroEval does not say which); `deepseek-v2.5` is DeepSeek-V2.5
(0908) in ZeroEval and DeepSeek-V2 chat (May 2024, the same `deepseek-chat` API product before its upgrade) in
MMLU-Pro, where 20% of its answers could not be parsed and count as wrong, so its broad-domain evidence is, if
anything, pessimistic. Releases of one family are assumed to differ less than the families do.

What this data can and cannot teach a router: every model has math evidence (GSM8K, MATH level 5) except
gemini-2.0-flash; broad-domain exam evidence (MMLU-Pro, 14 categories) exists for gpt-4o, gemini-1.5-pro,
gemini-1.5-flash, llama-3.1-70b-instruct, llama-3.1-8b-instruct and deepseek-v2.5; other broad-domain evidence (law,
medicine, code, translation, trivia, ... from RouterArena, and 14 task types from LLMRouter) exists only for
claude-3-haiku, gemini-2.0-flash, llama-3.1-8b-instruct, qwen2.5-7b-instruct and gemma-2-9b-it. The models that
answered several sources (llama-3.1-8b-instruct answered all four) link the sources onto one scale.

`profiles.toml` holds per-model aggregate accuracies (fractions, rounded to 4 decimals) from ZeroEval's official
summaries (`../zeroeval/aggregates/`, commit {ZEROEVAL_COMMIT}, Apache-2.0),
looked up under each model's ZeroEval source name, greedy decoding: `mmlu_redux` (MMLU-Redux accuracy) and
`zebra_puzzle`, `zebra_easy`, `zebra_hard`, `zebra_cell` (ZebraLogic grid puzzles: puzzle, easy-puzzle, hard-puzzle
and cell accuracy). They are priors for broad knowledge (MMLU-Redux) and logic (ZebraLogic), where the per-item
data above lacks evidence for most models. Values a summary lacks are left out, never estimated; without a profile
(no ZeroEval entry): {', '.join(no_profile) or 'none'}.
""", out / "zeroeval" / "LICENSE")


IMPORTERS = {"llmrouter": import_llmrouter, "zeroeval": import_zeroeval, "routellm": import_routellm,
             "routerarena": import_routerarena, "mmlu-pro": import_mmlu_pro, "default": import_default}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with the raw data sets")
    parser.add_argument("--out", type=Path, default=Path("training-data"), help="output folder")
    parser.add_argument("sets", nargs="*", metavar="SET", help=f"sets to convert: {', '.join(IMPORTERS)} (default: all)")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"error: data folder {args.data} not found; pass --data DIR (the folder holding llmrouter/, zeroeval/, ...)")
    unknown = [s for s in args.sets if s not in IMPORTERS]
    if unknown:
        sys.exit(f"error: unknown set(s) {', '.join(unknown)}; choose from {', '.join(IMPORTERS)}")
    for name in args.sets or IMPORTERS:
        IMPORTERS[name](args.data, args.out)
        print(f"wrote {args.out / name}")
    # Each set checked its own splits; now all converted sets together (the default set reuses the others' rows).
    rows = []
    for name in IMPORTERS:
        path = args.out / name / "logs.jsonl.gz"
        if path.exists():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                rows += [json.loads(line) for line in f]
    check_splits(rows, "across sets")
    print(f"checked splits across sets: {len(rows)} rows, every id and every normalised text on one side")


if __name__ == "__main__":
    main()
