"""Read sluice's Terraform and Rust sources into plain Python data for the contract tests.

terraform cannot run here, so the modules are parsed with python-hcl2 (8.x) into dicts. Only
the few expression shapes the modules use are resolved (for_each over a local map, each.key,
local references); anything else is kept as the expression text and searched with regexes.

Layout:
- `Repo`: paths of the repository under test (SLUICE_REPO_ROOT overrides, so the tests can be
  pointed at a deliberately broken copy to prove that they fail).
- `Module`: every block of one Terraform module directory, merged across its .tf files.
- Rust scanning: function crates, `required_env` / `optional_env` names, SDK calls, and which
  infra adapter files a crate uses.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import hcl2

try:  # python-hcl2 >= 8
    from hcl2 import SerializationOptions

    _OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
except ImportError:  # pragma: no cover - python-hcl2 < 8
    _OPTIONS = None

# Crates under functions/ that are not Lambda functions.
NOT_LAMBDAS = {"core", "cli"}


@dataclass(frozen=True)
class Repo:
    root: Path

    @classmethod
    def under_test(cls) -> "Repo":
        default = Path(__file__).resolve().parents[2]
        return cls(Path(os.environ.get("SLUICE_REPO_ROOT", default)).resolve())

    @property
    def terraform(self) -> Path:
        return self.root / "terraform"

    @property
    def aws(self) -> Path:
        return self.terraform / "modules" / "aws"

    @property
    def azure(self) -> Path:
        return self.terraform / "modules" / "azure"

    @property
    def functions(self) -> Path:
        return self.root / "functions"

    @property
    def infra_src(self) -> Path:
        return self.root / "infra" / "src"

    def function_crates(self) -> list[str]:
        """Every directory of functions/ with a Cargo.toml, except core and cli."""
        return sorted(
            d.name
            for d in self.functions.iterdir()
            if d.is_dir() and d.name not in NOT_LAMBDAS and (d / "Cargo.toml").is_file()
        )


def parse_tf(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        if _OPTIONS is None:
            return hcl2.load(f)
        return hcl2.load(f, serialization_options=_OPTIONS)


def tf_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.tf") if ".terraform" not in p.parts)


@dataclass
class Module:
    """All blocks of one module directory (its own .tf files, not subdirectories)."""

    directory: Path
    resources: dict[str, dict[str, dict]] = field(default_factory=dict)  # type -> name -> body
    data: dict[str, dict[str, dict]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def load(cls, directory: Path) -> "Module":
        m = cls(directory)
        for path in sorted(directory.glob("*.tf")):
            m.text += path.read_text(encoding="utf-8") + "\n"
            doc = parse_tf(path)
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    m.resources.setdefault(rtype, {}).update(named)
            for block in doc.get("data", []):
                for dtype, named in block.items():
                    m.data.setdefault(dtype, {}).update(named)
            for block in doc.get("locals", []):
                m.locals.update({k: v for k, v in block.items() if not k.startswith("__")})
            for block in doc.get("variable", []):
                m.variables.update(block)
            for block in doc.get("output", []):
                m.outputs.update(block)
        return m

    # -- expression helpers -------------------------------------------------------------

    def for_each_keys(self, body: dict) -> list[str] | None:
        """Keys of a resource's for_each when it is a local map, a literal map or a set literal."""
        expr = body.get("for_each")
        if expr is None:
            return None
        if isinstance(expr, dict):
            return sorted(k for k in expr if not k.startswith("__"))
        text = str(expr)
        m = re.fullmatch(r"\$\{local\.(\w+)\}", text)
        if m and isinstance(self.locals.get(m.group(1)), dict):
            return sorted(k for k in self.locals[m.group(1)] if not k.startswith("__"))
        m = re.fullmatch(r"\$\{toset\(\[(.*)\]\)\}", text)
        if m:
            return sorted(re.findall(r'"([^"]+)"', m.group(1)))
        raise AssertionError(f"cannot resolve for_each = {text!r}")

    def expand_locals(self, value: Any, depth: int = 3) -> str:
        """The value as text, with `local.X` references replaced by X's text (a few levels)."""
        text = json.dumps(value) if not isinstance(value, str) else value
        seen: set[str] = set()
        for _ in range(depth):
            refs = set(re.findall(r"\blocal\.(\w+)", text))
            if not refs:
                break
            # Mark the references found so far, then append the referenced values unmarked so
            # that the next level follows the locals they refer to.
            text = re.sub(r"\blocal\.(\w+)", r"<\1>", text)
            for name in sorted(refs - seen):
                if name in self.locals:
                    text += "\n" + json.dumps(self.locals[name])
            seen |= refs
        return text

    def substitute_string_locals(self, text: str, depth: int = 3) -> str:
        """text with each `${local.X}` replaced by X's value when X is a plain string literal
        (e.g. "${local.streams_prefix}*" -> "streams/*"); other references stay as they are."""

        def value(m: re.Match) -> str:
            v = self.locals.get(m.group(1))
            return v if isinstance(v, str) and "${" not in v else m.group(0)

        for _ in range(depth):
            text = re.sub(r"\$\{local\.(\w+)\}", value, text)
        return text


def blocks(value: Any) -> list[dict]:
    """A nested block as a list of bodies (python-hcl2 gives a list, or a dict for one)."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)]


def strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# ---------------------------------------------------------------------------------------
# IAM policy documents
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    doc: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditional: bool  # from a dynamic block: present only for some variable values
    prefixes: tuple[str, ...] = ()  # values of its conditions on s3:prefix


def policy_statements(module: Module, doc_name: str, seen: set[str] | None = None) -> list[Statement]:
    """Statements of data.aws_iam_policy_document.<doc_name>, including dynamic statements and
    the documents it merges through source_policy_documents."""
    seen = set() if seen is None else seen
    if doc_name in seen:
        return []
    seen.add(doc_name)
    docs = module.data.get("aws_iam_policy_document", {})
    assert doc_name in docs, f"data.aws_iam_policy_document.{doc_name} is not defined"
    body = docs[doc_name]
    out: list[Statement] = []

    def add(st: dict, conditional: bool) -> None:
        out.append(
            Statement(
                doc=doc_name,
                sid=str(st.get("sid", "")),
                effect=str(st.get("effect", "Allow")),
                actions=tuple(strings(st.get("actions"))),
                resources=tuple(strings(st.get("resources"))),
                conditional=conditional,
                prefixes=tuple(
                    v
                    for c in blocks(st.get("condition"))
                    if c.get("variable") == "s3:prefix"
                    for v in strings(c.get("values"))
                ),
            )
        )

    for st in blocks(body.get("statement")):
        add(st, False)
    for dyn in blocks(body.get("dynamic")):
        for st in blocks(dyn.get("statement")):
            for content in blocks(st.get("content")):
                add(content, True)
    for src in strings(body.get("source_policy_documents")):
        for ref in re.findall(r"data\.aws_iam_policy_document\.(\w+)", src):
            out.extend(policy_statements(module, ref, seen))
    return out


def role_policy_docs(module: Module) -> dict[str, list[str]]:
    """fn -> names of the policy documents attached to its role by aws_iam_role_policy.this.

    The module attaches `{ generate = data.aws_iam_policy_document.generate.json, ... }[each.key]`.
    """
    rp = module.resources.get("aws_iam_role_policy", {})
    assert "this" in rp, "aws_iam_role_policy.this (one inline policy per function role) is missing"
    body = rp["this"]
    policy = body["policy"]
    text = json.dumps(policy) if not isinstance(policy, str) else policy
    pairs = re.findall(r"(\w+)\s*[=:]\s*\"?\$?\{?data\.aws_iam_policy_document\.(\w+)\.json", text)
    out: dict[str, list[str]] = {}
    for fn, doc in pairs:
        out.setdefault(fn, []).append(doc)
    return out


# ---------------------------------------------------------------------------------------
# Rust sources
# ---------------------------------------------------------------------------------------

ENV_CALL = re.compile(r"\b(required_env|optional_env)\(\s*\"(SLUICE_[A-Z0-9_]+)\"")

# SDK call → IAM action it needs.
SDK_ACTIONS = {
    ".put_records(": "kinesis:PutRecords",
    ".get_shard_iterator(": "kinesis:GetShardIterator",
    ".get_records(": "kinesis:GetRecords",
    ".get_object(": "s3:GetObject",
    ".put_object(": "s3:PutObject",
    # Multipart uploads are authorised by s3:PutObject
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html#mpuAndPermissions).
    ".create_multipart_upload(": "s3:PutObject",
    ".upload_part(": "s3:PutObject",
    ".complete_multipart_upload(": "s3:PutObject",
    ".head_object(": "s3:GetObject",
    ".delete_object(": "s3:DeleteObject",
    ".abort_multipart_upload(": "s3:AbortMultipartUpload",
    ".list_objects_v2(": "s3:ListBucket",
    ".publish(": "sns:Publish",
    ".get_secret_value(": "secretsmanager:GetSecretValue",
}


# Actions behind an ObjectStore method that only some functions call: a function needs the
# action only if its own source calls the method (the S3 adapter implements it for everyone).
STORE_METHOD_ACTIONS = {
    "s3:DeleteObject": ".delete(",
    "s3:AbortMultipartUpload": ".abort(",
}


def rust_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.rs")) if directory.is_dir() else []


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def env_reads(files: Iterable[Path]) -> dict[str, set[str]]:
    """{"required": {...}, "optional": {...}} of SLUICE_* names read in these files."""
    out = {"required": set(), "optional": set()}
    for path in files:
        for kind, name in ENV_CALL.findall(strip_comments(path.read_text(encoding="utf-8"))):
            out["required" if kind == "required_env" else "optional"].add(name)
    return out


def infra_module_path(repo: Repo, path: Path) -> str:
    """infra/src/sink/kinesis.rs -> "sink::kinesis"; infra/src/sink/mod.rs -> "sink"."""
    rel = path.relative_to(repo.infra_src).with_suffix("")
    parts = [p for p in rel.parts if p not in ("mod", "lib")]
    return "::".join(parts)


def public_types(src: str) -> set[str]:
    return set(re.findall(r"\bpub\s+(?:struct|enum|trait)\s+([A-Za-z_]\w*)", src))


def crate_uses_infra_file(repo: Repo, fn: str, path: Path) -> bool:
    """Whether functions/<fn>/src names the infra file's module (e.g. `store::s3`) or one of the
    public types it defines (e.g. `S3Store`)."""
    fn_src = "\n".join(
        strip_comments(p.read_text(encoding="utf-8")) for p in rust_files(repo.functions / fn / "src")
    )
    module = infra_module_path(repo, path)
    if "::" in module and re.search(rf"\b{re.escape(module)}\b", fn_src):
        return True
    types = public_types(strip_comments(path.read_text(encoding="utf-8")))
    return any(re.search(rf"\b{re.escape(t)}\b", fn_src) for t in types)


def sdk_calls(path: Path) -> set[str]:
    """IAM actions of the AWS SDK calls in a file that uses an `aws_sdk_*` crate (a method of
    sluice's own, such as `ObjectStore::publish`, is not an SNS call)."""
    src = strip_comments(path.read_text(encoding="utf-8"))
    if "aws_sdk_" not in src:
        return set()
    return {action for call, action in SDK_ACTIONS.items() if call in src}
