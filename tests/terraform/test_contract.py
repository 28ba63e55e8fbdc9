"""Contract between the Terraform modules and the Rust workspace.

terraform itself cannot run here; these tests parse every .tf file with python-hcl2 and check
what the Rust side relies on:

(a) one aws_lambda_function per function crate, and no Lambda without a crate;
(b) each Lambda deploys target/lambda/<fn>/bootstrap.zip (cargo lambda's output);
(c) Glue tables come from glue_tables.json (and, with SLUICE_BIN set, that file and
    kusto/tables.kql equal what `sluice schema` prints);
(d) the Athena named queries are byte-identical copies of functions/cli/queries/*.sql;
(e) the SLUICE_* environment each function gets equals what its code reads;
(f) each function role allows the actions its code needs, with no "*" action.

Point SLUICE_REPO_ROOT at another checkout (e.g. a deliberately broken copy) to test that one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tfmodel import (
    Module,
    Repo,
    blocks,
    crate_uses_infra_file,
    env_reads,
    parse_tf,
    policy_statements,
    role_policy_docs,
    rust_files,
    sdk_calls,
    tf_files,
)

# ---------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------

# Actions each function's role must allow at least (its code's needs, from the design).
REQUIRED_ACTIONS: dict[str, set[str]] = {
    "generate": {
        "kinesis:PutRecords",
        "s3:GetObject",
        "s3:PutObject",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    },
    "fetch": {
        "kinesis:PutRecords",
        "secretsmanager:GetSecretValue",
        "s3:PutObject",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    },
    "aggregate": {
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "s3:GetObject",
        "s3:PutObject",
        "sqs:SendMessage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    },
    "alert": {
        "s3:GetObject",
        "s3:PutObject",
        "sns:Publish",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    },
}

# Lake prefixes each function must be able to use, with the actions on each.
REQUIRED_S3: dict[str, dict[str, set[str]]] = {
    "generate": {"state/generate/*": {"s3:GetObject", "s3:PutObject"}, "truth/*": {"s3:GetObject", "s3:PutObject"}},
    "fetch": {"quarantine/fetch/*": {"s3:PutObject"}},
    "aggregate": {
        p: {"s3:GetObject", "s3:PutObject"}
        for p in ("raw/*", "windows/*", "anomalies/*", "late/*", "quarantine/*", "state/aggregate/*")
    },
    "alert": {
        "windows/*": {"s3:GetObject"},
        "anomalies/*": {"s3:GetObject"},
        "state/alert/*": {"s3:GetObject", "s3:PutObject"},
    },
}

# Actions that have no resource-level permissions and so may (only) use Resource "*".
UNSCOPABLE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

SKIP_NO_MAIN = "Lambda glue (main.rs) lands with issue 3"


def lambda_functions(aws: Module) -> dict[str, dict]:
    """fn -> body of the aws_lambda_function that deploys it."""
    out: dict[str, dict] = {}
    for name, body in aws.resources.get("aws_lambda_function", {}).items():
        keys = aws.for_each_keys(body)
        for fn in keys if keys is not None else [name]:
            out[fn] = body
    return out


def role_statements(aws: Module, fn: str):
    docs = role_policy_docs(aws)
    assert fn in docs, f"no inline policy for the {fn} role in aws_iam_role_policy.this"
    out = []
    for doc in docs[fn]:
        out.extend(policy_statements(aws, doc))
    return out


# ---------------------------------------------------------------------------------------
# Parsing itself
# ---------------------------------------------------------------------------------------


def test_every_tf_file_parses(repo: Repo):
    files = tf_files(repo.terraform)
    assert files, f"no .tf files under {repo.terraform}"
    for path in files:
        parse_tf(path)  # raises on a syntax error


def test_variables_and_outputs_are_documented(repo: Repo):
    """STYLE.md: every variable has a description and a type, every output a description."""
    problems = []
    for path in tf_files(repo.terraform):
        doc = parse_tf(path)
        for block in doc.get("variable", []):
            for name, body in block.items():
                for attr in ("description", "type"):
                    if attr not in body:
                        problems.append(f"{path.relative_to(repo.root)}: variable {name} has no {attr}")
        for block in doc.get("output", []):
            for name, body in block.items():
                if "description" not in body:
                    problems.append(f"{path.relative_to(repo.root)}: output {name} has no description")
    assert not problems, "\n".join(problems)


def test_no_hard_coded_account_or_region(repo: Repo):
    pattern = re.compile(r"\b\d{12}\b|\b(?:us|eu|ap|sa|ca|me|af)-(?:north|south|east|west|central|northeast|southeast)-\d\b")
    hits = []
    for path in tf_files(repo.terraform / "modules"):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.lstrip().startswith("#") and pattern.search(line):
                hits.append(f"{path.relative_to(repo.root)}:{i}: {line.strip()}")
    assert not hits, "hard-coded account id or region:\n" + "\n".join(hits)


# ---------------------------------------------------------------------------------------
# (a) one Lambda per function crate, (b) zip paths
# ---------------------------------------------------------------------------------------


def test_a_lambda_per_function_crate(repo: Repo, aws: Module):
    crates = set(repo.function_crates())
    lambdas = set(lambda_functions(aws))
    assert crates, "no function crates found under functions/"
    assert not crates - lambdas, f"function crates without an aws_lambda_function: {sorted(crates - lambdas)}"
    assert not lambdas - crates, f"aws_lambda_function without a crate under functions/: {sorted(lambdas - crates)}"


def test_b_lambda_zip_paths(aws: Module):
    for fn, body in lambda_functions(aws).items():
        for attr in ("filename",):
            path = str(body.get(attr, "")).replace("${each.key}", fn)
            assert path.endswith(f"target/lambda/{fn}/bootstrap.zip"), (
                f"{fn}: {attr} = {body.get(attr)!r} does not end in target/lambda/{fn}/bootstrap.zip"
            )
        hash_expr = str(body.get("source_code_hash", "")).replace("${each.key}", fn)
        assert f"target/lambda/{fn}/bootstrap.zip" in hash_expr, f"{fn}: source_code_hash does not hash the zip"
        assert body.get("runtime") == "provided.al2023", f"{fn}: runtime must be provided.al2023"
        assert body.get("handler") == "bootstrap", f"{fn}: handler must be bootstrap"


def test_aggregate_event_source_mapping(aws: Module):
    esms = aws.resources.get("aws_lambda_event_source_mapping", {})
    assert esms, "no aws_lambda_event_source_mapping"
    body = next(iter(esms.values()))
    assert "aggregate" in str(body["function_name"])
    assert body.get("function_response_types") == ["ReportBatchItemFailures"]
    assert body.get("bisect_batch_on_function_error") is True
    assert body.get("starting_position") == "TRIM_HORIZON"
    on_failure = [f for d in blocks(body.get("destination_config")) for f in blocks(d.get("on_failure"))]
    assert on_failure and "aws_sqs_queue" in str(on_failure[0]["destination_arn"])


# ---------------------------------------------------------------------------------------
# (c) Glue tables from glue_tables.json; schema files equal the binary's output
# ---------------------------------------------------------------------------------------


def test_c_glue_tables_from_json(repo: Repo, aws: Module):
    spec = json.loads((repo.aws / "glue_tables.json").read_text(encoding="utf-8"))
    assert isinstance(spec, dict) and spec, "glue_tables.json must map table name -> table"
    for name, table in spec.items():
        assert {"prefix", "partitions", "columns"} <= set(table), f"{name}: missing prefix/partitions/columns"
        assert all({"name", "type", "comment"} <= set(c) for c in table["columns"]), f"{name}: column without name/type/comment"

    # The local that decodes the file...
    decoding = [
        k for k, v in aws.locals.items()
        if re.search(r"jsondecode\(\s*file\([^)]*glue_tables\.json\"?\s*\)\s*\)", str(v))
    ]
    assert decoding, "no local reads jsondecode(file(\".../glue_tables.json\"))"

    # ...drives one table per entry, with columns and partitions taken from the entry.
    tables = aws.resources.get("aws_glue_catalog_table", {})
    assert tables, "no aws_glue_catalog_table"
    driven = {
        rname: body for rname, body in tables.items()
        if str(body.get("for_each")) in {f"${{local.{k}}}" for k in decoding}
    }
    assert driven, f"no aws_glue_catalog_table has for_each = local.{decoding[0]}"
    assert len(tables) == len(driven), f"Glue tables not driven by glue_tables.json: {sorted(set(tables) - set(driven))}"
    for rname, body in driven.items():
        assert body.get("name") == "${each.key}", f"aws_glue_catalog_table.{rname}: name must be each.key"
        # for_each is the decoded file itself (not a filtered copy), so every entry gets a table.
        sd = blocks(body.get("storage_descriptor"))[0]
        assert "columns" not in sd, "columns must not be written out by hand: use dynamic \"columns\""
        dyn_cols = [d["columns"] for d in blocks(sd.get("dynamic")) if "columns" in d]
        assert dyn_cols and "each.value.columns" in str(dyn_cols[0]["for_each"]), "columns must come from each.value.columns"
        dyn_parts = [d["partition_keys"] for d in blocks(body.get("dynamic")) if "partition_keys" in d]
        assert dyn_parts and "each.value.partitions" in str(dyn_parts[0]["for_each"]), "partition keys must come from each.value.partitions"
        params = aws.expand_locals(body.get("parameters"))
        for key in ("projection.enabled", "projection.dt.type", "projection.hour.type", "storage.location.template"):
            assert key in params, f"partition projection parameter {key} missing"


def _schema_output(fmt: str) -> bytes:
    binary = os.environ["SLUICE_BIN"]
    result = subprocess.run([binary, "schema", "--format", fmt], capture_output=True, timeout=120)
    assert result.returncode == 0, f"{binary} schema --format {fmt} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


@pytest.mark.skipif(not os.environ.get("SLUICE_BIN"), reason="SLUICE_BIN is not set")
@pytest.mark.parametrize(
    "fmt, relpath",
    [("glue", "terraform/modules/aws/glue_tables.json"), ("kusto", "terraform/modules/azure/kusto/tables.kql")],
)
def test_c_schema_files_match_binary(repo: Repo, fmt: str, relpath: str):
    expected = _schema_output(fmt)
    actual = (repo.root / relpath).read_bytes()
    assert actual == expected, f"{relpath} drifted from `sluice schema --format {fmt}`: regenerate it with `sluice schema --format {fmt} > {relpath}`"


def test_c_kusto_tables_script_is_used(azure: Module):
    scripts = azure.resources.get("azurerm_kusto_script", {})
    contents = [str(b.get("script_content")) for b in scripts.values()]
    assert any(re.search(r"file\([^)]*kusto/tables\.kql", c) for c in contents), "tables.kql is not run by an azurerm_kusto_script"
    conn = azure.resources.get("azurerm_kusto_eventhub_data_connection", {})
    assert conn, "no azurerm_kusto_eventhub_data_connection"
    body = next(iter(conn.values()))
    assert body.get("table_name") == "sluice_events"
    assert body.get("mapping_rule_name") == "sluice_events_json"
    assert body.get("data_format") in {"JSON", "MULTIJSON"}


# ---------------------------------------------------------------------------------------
# (d) named queries are the CLI's queries, byte for byte
# ---------------------------------------------------------------------------------------


def test_d_named_queries_are_cli_queries(repo: Repo, aws: Module):
    tf_dir = repo.aws / "queries"
    cli_dir = repo.functions / "cli" / "queries"
    tf_files_ = {p.name for p in tf_dir.glob("*.sql")}
    cli_files = {p.name for p in cli_dir.glob("*.sql")}
    assert cli_files, f"no queries in {cli_dir}"
    assert not cli_files - tf_files_, f"missing in terraform/modules/aws/queries: {sorted(cli_files - tf_files_)}"
    assert not tf_files_ - cli_files, f"not in functions/cli/queries: {sorted(tf_files_ - cli_files)}"
    differ = [n for n in sorted(cli_files) if (tf_dir / n).read_bytes() != (cli_dir / n).read_bytes()]
    assert not differ, f"differ from functions/cli/queries (copy them again): {differ}"

    queries = aws.resources.get("aws_athena_named_query", {})
    assert queries, "no aws_athena_named_query"
    body = next(iter(queries.values()))
    assert re.search(r"fileset\([^)]*queries\"?,\s*\"\*\.sql\"\)", str(body.get("for_each"))), "named queries must iterate fileset(.../queries, \"*.sql\")"
    assert re.fullmatch(r"\$\{file\(.*queries/\$\{each\.(key|value)\}\"?\)\}", str(body.get("query"))), "the query text must be file(...) unchanged"


# ---------------------------------------------------------------------------------------
# (e) environment variables
# ---------------------------------------------------------------------------------------


def terraform_env_names(aws: Module, fn: str) -> set[str]:
    body = lambda_functions(aws)[fn]
    env = [e for e in blocks(body.get("environment"))]
    assert env, f"{fn}: aws_lambda_function has no environment block"
    expr = env[0]["variables"]
    text = str(expr)
    m = re.fullmatch(r"\$\{local\.(\w+)\[each\.key\]\}", text)
    if m:  # a local map keyed by function
        per_fn = aws.locals[m.group(1)]
        assert fn in per_fn, f"local.{m.group(1)} has no entry for {fn}"
        text = aws.expand_locals(per_fn[fn])
    else:
        text = aws.expand_locals(expr)
    return set(re.findall(r"\bSLUICE_[A-Z0-9_]+\b", text))


def code_env_names(repo: Repo, fn: str) -> tuple[set[str], set[str]]:
    """(required, read) SLUICE_* names for fn: its own crate, plus the infra files it uses
    (required) or any infra file (read)."""
    own = env_reads(rust_files(repo.functions / fn / "src"))
    required = set(own["required"])
    read = own["required"] | own["optional"]
    for path in rust_files(repo.infra_src):
        names = env_reads([path])
        read |= names["required"] | names["optional"]
        if names["required"] and crate_uses_infra_file(repo, fn, path):
            required |= names["required"]
    return required, read


@pytest.mark.parametrize("fn", ["generate", "fetch", "aggregate", "alert"])
def test_e_environment_matches_code(repo: Repo, aws: Module, fn: str):
    if not (repo.functions / fn / "src" / "main.rs").is_file():
        pytest.skip(SKIP_NO_MAIN)
    set_by_tf = terraform_env_names(aws, fn)
    required, read = code_env_names(repo, fn)
    assert required or read, f"{fn}: main.rs exists but no required_env/optional_env(\"SLUICE_...\") call was found"
    missing = required - set_by_tf
    unread = set_by_tf - read
    assert not missing, f"{fn}: the code requires {sorted(missing)} but Terraform does not set them"
    assert not unread, f"{fn}: Terraform sets {sorted(unread)} but the code never reads them"


def test_e_environment_has_bucket_everywhere(aws: Module):
    """Independent of the Rust side: every function gets SLUICE_BUCKET and SLUICE_LOG."""
    for fn in lambda_functions(aws):
        names = terraform_env_names(aws, fn)
        assert {"SLUICE_BUCKET", "SLUICE_LOG"} <= names, f"{fn}: SLUICE_BUCKET/SLUICE_LOG not set"


# ---------------------------------------------------------------------------------------
# (f) IAM
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ["generate", "fetch", "aggregate", "alert"])
def test_f_role_has_no_wildcard_actions(aws: Module, fn: str):
    for st in role_statements(aws, fn):
        wild = [a for a in st.actions if "*" in a]
        assert not wild, f"{fn}: statement {st.sid or st.doc} allows wildcard actions {wild}"
        if st.effect == "Allow" and "*" in st.resources:
            assert set(st.actions) <= UNSCOPABLE_ACTIONS, (
                f"{fn}: statement {st.sid or st.doc} uses Resource \"*\" for {sorted(set(st.actions) - UNSCOPABLE_ACTIONS)}"
            )


@pytest.mark.parametrize("fn", ["generate", "fetch", "aggregate", "alert"])
def test_f_role_has_required_actions(aws: Module, fn: str):
    statements = [s for s in role_statements(aws, fn) if s.effect == "Allow" and not s.conditional]
    actions = {a for s in statements for a in s.actions}
    missing = REQUIRED_ACTIONS[fn] - actions
    assert not missing, f"{fn}: role lacks {sorted(missing)}"

    for prefix, needed in REQUIRED_S3[fn].items():
        granted = {a for s in statements if any(r.endswith("/" + prefix) for r in s.resources) for a in s.actions}
        assert needed <= granted, f"{fn}: role lacks {sorted(needed - granted)} on <lake>/{prefix}"


def test_f_sdk_calls_are_allowed(repo: Repo, aws: Module):
    """Every AWS SDK call in an infra adapter is allowed for each function whose crate uses it."""
    calls = {p: sdk_calls(p) for p in rust_files(repo.infra_src)}
    calls = {p: c for p, c in calls.items() if c}
    if not calls:
        pytest.skip("no AWS SDK calls in infra/src yet")
    problems = []
    for fn in repo.function_crates():
        actions = {a for s in role_statements(aws, fn) if s.effect == "Allow" for a in s.actions}
        for path, needed in calls.items():
            if crate_uses_infra_file(repo, fn, path):
                for action in sorted(needed - actions):
                    problems.append(f"{fn} uses {path.relative_to(repo.root)} which calls the SDK for {action}")
    assert not problems, "role lacks actions the code needs:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------
# KQL (optional): Microsoft's Kusto parser/binder, when its npm package is at hand
# ---------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("SLUICE_KUSTO_LS"),
    reason="SLUICE_KUSTO_LS (dir of npm @kusto/language-service-next) is not set",
)
def test_kql_files_parse_and_bind(repo: Repo):
    files = sorted(str(p) for p in (repo.azure / "kusto").glob("*.kql"))
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("kql_check.js")), os.environ["SLUICE_KUSTO_LS"], *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
