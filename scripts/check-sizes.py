#!/usr/bin/env python3
"""Checks the house rules on code size: no module over 500 lines, no function over 80 lines unless the line
above its signature (or its doc comment) says why, in a comment starting `// Long:`. Counts every line of a
module file (tests included, since `#[cfg(test)] mod tests;` files are modules of their own) and every line of a
function from its signature to its closing brace. Exits 1 and lists what breaks the rules.
   scripts/check-sizes.py            # the workspace's crates
"""
import pathlib, re, sys

MAX_MODULE, MAX_FN = 500, 80
root = pathlib.Path(__file__).resolve().parent.parent
fn_start = re.compile(r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"C"\s+)?fn\s+(\w+)')
problems = []


def blank_literals(text):
    """The text with the insides of string, raw-string and char literals and of comments blanked (newlines kept),
    so that braces in them do not count."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            start = i + 2 + len(hashes)
            j = text.find('"' + hashes, start)
            j = n if j < 0 else j + 1 + len(hashes)
            out.append('""' + re.sub(r"[^\n]", " ", text[start:j - 1 - len(hashes)]) + " " * len(hashes)); i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j]) + '"'); i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            out.append("' '"); i += len(m.group(0))
        else:
            out.append(c); i += 1
    return "".join(out)
for path in sorted(root.glob("crates/*/src/**/*.rs")) + sorted(root.glob("crates/*/tests/**/*.rs")) + sorted(root.glob("crates/*/benches/*.rs")):
    raw = path.read_text()
    lines = raw.splitlines()
    code_lines = blank_literals(raw).splitlines()
    rel = path.relative_to(root)
    if len(lines) > MAX_MODULE:
        problems.append(f"{rel}: {len(lines)} lines (a module is at most {MAX_MODULE})")
    i = 0
    while i < len(lines):
        m = fn_start.match(lines[i])
        if not m:
            i += 1
            continue
        # The body: from the first `{` after the signature to its matching `}` (strings and comments are rare
        # enough in signatures and bodies' brace balance that a plain count serves).
        depth, start, j, opened = 0, i, i, False
        while j < len(lines):
            code = code_lines[j]
            if not opened and ';' in code and '{' not in code:
                break  # a declaration without a body
            depth += code.count('{') - code.count('}')
            opened = opened or '{' in code
            if opened and depth <= 0:
                break
            j += 1
        length = j - start + 1
        if opened and length > MAX_FN:
            above = start - 1
            while above >= 0 and (lines[above].strip().startswith(('///', '#[', '//'))):
                if lines[above].strip().startswith('// Long:'):
                    break
                above -= 1
            if not (above >= 0 and lines[above].strip().startswith('// Long:')):
                problems.append(f"{rel}:{start + 1}: fn {m.group(7)} is {length} lines (at most {MAX_FN}, or say why in a `// Long:` comment)")
        i = j + 1 if opened else i + 1
for p in problems:
    print(p)
print(f"{len(problems)} problem(s)", file=sys.stderr)
sys.exit(1 if problems else 0)
