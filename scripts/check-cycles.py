#!/usr/bin/env python3
"""Lists module cycles in each crate: module A names module B (`crate::b::...` in code or a `use`) and B,
directly or through others, names A. A module is a file (a `mod.rs` is its folder's module); its test
modules count as part of it. A parent naming its child (`child::Item`) is an edge; a child naming its ancestors is
not (that is how a module's children share its items). Exits 1 when a crate has a cycle.
   scripts/check-cycles.py
"""
import pathlib, re, sys

root = pathlib.Path(__file__).resolve().parent.parent
bad = False
for crate in sorted(root.glob("crates/*/src")):
    files = sorted(crate.rglob("*.rs"))
    def module_of(path):
        rel = path.relative_to(crate).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        return tuple(parts)
    modules = {module_of(f) for f in files}
    def owner(mod):
        # Test modules belong to the module they test.
        while mod and mod[-1] == "tests":
            mod = mod[:-1]
        return mod
    def resolve(path):
        # The longest known module prefix of a `crate::a::b::Item` path.
        parts = tuple(path)
        while parts and parts not in modules:
            parts = parts[:-1]
        return parts
    edges = {}
    for f in files:
        src_mod = owner(module_of(f))
        text = re.sub(r"//.*", "", f.read_text())
        targets = set()
        for m in re.finditer(r"crate::((?:\w+::)*\w+)", text):
            targets.add(resolve(m.group(1).split("::")))
        # A parent naming its own child (`online::Outcome`, `pub use config::X`) depends on it.
        if f.stem in ("mod", "lib", "main"):
            for child in modules:
                if len(child) == len(module_of(f)) + 1 and child[:-1] == module_of(f) and child[-1] != "tests":
                    if re.search(r"(?<![\w:])" + re.escape(child[-1]) + r"::", text):
                        targets.add(child)
        for m in re.finditer(r"\bsuper::((?:\w+::)*\w+)", text):
            base = module_of(f)[:-1]
            targets.add(resolve(list(base) + m.group(1).split("::")))
        for t in targets:
            t = owner(t)
            if not t or t == src_mod:
                continue
            # A child naming its ancestors is how Rust modules share a parent's items; the parent's own edges to
            # its children are counted above.
            if src_mod[: len(t)] == t and len(t) < len(src_mod):
                continue
            edges.setdefault(src_mod, set()).add(t)
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)
    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    name = crate.parent.name
    for comp in sccs:
        bad = True
        show = lambda m: "::".join(m) or "(crate root)"
        inner = sorted((show(a), show(b)) for a in comp for b in edges.get(a, ()) if b in comp)
        print(f"{name}: cycle among {', '.join(sorted(show(m) for m in comp))}")
        for a, b in inner:
            print(f"    {a} -> {b}")
sys.exit(1 if bad else 0)
