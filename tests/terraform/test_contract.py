"""Contract between the Terraform modules and the Rust workspace.

terraform itself cannot run here; these tests parse every .tf file with python-hcl2 and check
what the Rust side relies on:

(a) one aws_lambda_function per function crate, and no Lambda without a crate;
(b) each Lambda deploys target/lambda/<fn>/bootstrap.zip (cargo lambda's output);
(c) Glue tables come from glue_tables.json (and, with SLUICE_BIN set, that file and
    kusto/tables.kql equal what `sluice schema` prints);
(d) the Athena named queries are byte-identical copies of functions/cli/queries/*.sql;
(e) the SLUICE_* environment each function gets equals what its code reads;
(f) each function role allows the actions its code needs, with no "*" action;
(g) the stream definitions (streams/*.toml) are uploaded to the lake, every function gets
    SLUICE_STREAMS_PREFIX (where they are) and SLUICE_STREAMS_DIGEST (a hash of their contents),
    may read that prefix and is deployed after the objects, and the Glue scenario projection
    lists the streams of glue_tables.json instead of a typed-in list;
(k) the optional Kafka triggers of aggregate (Amazon MSK, self-managed Kafka, Event Hubs through
    its Kafka endpoint) are off by default, target aggregate, take topics, batch size and
    starting position from variables, and come with exactly the permissions Lambda needs.

Point SLUICE_REPO_ROOT at another checkout (e.g. a deliberately broken copy) to test that one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
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
    STORE_METHOD_ACTIONS,
    sdk_calls,
    strip_comments,
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
        # Discards the staged objects of an attempt whose commit was refused (the only store
        # user that stages, so the only role with it).
        "s3:AbortMultipartUpload",
        # Deletes superseded state generations (ObjectStore::delete; only aggregate calls it).
        "s3:DeleteObject",
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

# Key prefix of the stream definitions in the lake (SLUICE_STREAMS_PREFIX); every function reads
# them at cold start (infra/src/streams.rs).
STREAMS_PREFIX = "streams/"

# Lake prefixes each function must be able to use, with the actions on each.
REQUIRED_S3: dict[str, dict[str, set[str]]] = {
    "generate": {
        "state/generate/*": {"s3:GetObject", "s3:PutObject"},
        "truth/*": {"s3:GetObject", "s3:PutObject"},
        STREAMS_PREFIX + "*": {"s3:GetObject"},
    },
    "fetch": {"quarantine/fetch/*": {"s3:PutObject"}, STREAMS_PREFIX + "*": {"s3:GetObject"}},
    "aggregate": {
        **{
            p: {"s3:GetObject", "s3:PutObject"}
            for p in ("raw/*", "windows/*", "anomalies/*", "late/*", "quarantine/*", "pipeline/*",
                      "state/aggregate/*")
        },
        STREAMS_PREFIX + "*": {"s3:GetObject"},
    },
    "alert": {
        "windows/*": {"s3:GetObject"},
        "anomalies/*": {"s3:GetObject"},
        "state/alert/*": {"s3:GetObject", "s3:PutObject"},
        "alerts/*": {"s3:PutObject"},
        STREAMS_PREFIX + "*": {"s3:GetObject"},
    },
}

# Set by Terraform on purpose although no code reads them, with the reason.
SET_NOT_READ = {
    "SLUICE_STREAMS_DIGEST": "changes the function configuration when a stream definition changes, "
    "so that warm instances holding the old definitions are replaced",
}

# Actions that have no resource-level permissions and so may (only) use Resource "*": X-Ray, and
# the EC2 Describe calls Lambda makes with the role for an MSK mapping's network interfaces
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
UNSCOPABLE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
}

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


def test_b_the_build_script_builds_every_deployed_zip(repo: Repo, aws: Module):
    """terraform/build-lambdas.sh builds exactly the packages whose zips the module deploys,
    with the dist profile, as zips (a bare `cargo lambda build` builds only the CLI)."""
    script = (repo.root / "terraform" / "build-lambdas.sh").read_text()
    lines = script.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("cargo lambda build ")), None)
    assert start is not None, "terraform/build-lambdas.sh runs no `cargo lambda build`"
    command = [lines[start]]
    while command[-1].endswith("\\"):
        command.append(lines[start + len(command)])
    args = " ".join(line.rstrip("\\") for line in command)
    packages = set(re.findall(r"-p sluice-([a-z]+)", args))
    assert packages == set(lambda_functions(aws)), (
        f"build-lambdas.sh builds {sorted(packages)}, the module deploys {sorted(lambda_functions(aws))}"
    )
    assert "--profile dist" in args and "--output-format zip" in args, args


def test_aggregate_event_source_mapping(aws: Module):
    esms = aws.resources.get("aws_lambda_event_source_mapping", {})
    assert esms, "no aws_lambda_event_source_mapping"
    kinesis = [b for b in esms.values() if "aws_kinesis_stream." in str(b.get("event_source_arn"))]
    assert len(kinesis) == 1, "expected one event source mapping on the Kinesis stream"
    body = kinesis[0]
    assert "aggregate" in str(body["function_name"])
    assert body.get("function_response_types") == ["ReportBatchItemFailures"]
    assert body.get("bisect_batch_on_function_error") is True
    assert body.get("starting_position") == "TRIM_HORIZON"
    on_failure = [f for d in blocks(body.get("destination_config")) for f in blocks(d.get("on_failure"))]
    assert on_failure and "aws_sqs_queue" in str(on_failure[0]["destination_arn"])


def test_aggregate_is_swept_on_a_schedule_with_its_idle_timeout(aws: Module):
    """The sweep (issue "Every event exactly once"): a schedule invokes aggregate with the
    Scheduled Event payload the handler reads as a sweep, and SLUICE_IDLE_TIMEOUT comes from a
    variable that defaults to one minute."""
    schedules = aws.locals["schedules"]
    assert "aggregate" in schedules, "no sweep schedule for aggregate"
    sweep = schedules["aggregate"]
    assert "var.aggregate_sweep_schedule" in str(sweep["expression"])
    assert str(sweep["enabled"]).lower() in ("true", "${true}")
    resources = aws.resources["aws_scheduler_schedule"]
    body = next(iter(resources.values()))
    assert "local.schedules" in str(body["for_each"])
    target_input = str(blocks(body["target"])[0]["input"])
    assert "Scheduled Event" in target_input and "aws.scheduler" in target_input
    assert env_assignments(aws, "aggregate", "SLUICE_IDLE_TIMEOUT") == ["var.aggregate_idle_timeout"]
    assert aws.variables["aggregate_idle_timeout"]["default"] == "1m"


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
    decoding = glue_decoding_locals(aws)
    assert decoding, "no local reads jsondecode(file(\".../glue_tables.json\"))"

    # ...drives one table per entry, with columns and partitions taken from the entry.
    tables = aws.resources.get("aws_glue_catalog_table", {})
    assert tables, "no aws_glue_catalog_table"
    driven = {
        rname: body for rname, body in tables.items()
        if str(body.get("for_each")) in {f"${{local.{k}}}" for k in decoding}
    }
    assert driven, f"no aws_glue_catalog_table has for_each = local.{decoding[0]}"
    views = {rname for rname, body in tables.items() if body.get("table_type") == "VIRTUAL_VIEW"}
    undriven = sorted(set(tables) - set(driven) - views)
    assert not undriven, f"Glue tables not driven by glue_tables.json: {undriven}"
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


def glue_decoding_locals(aws: Module) -> list[str]:
    return [
        k for k, v in aws.locals.items()
        if re.search(r"jsondecode\(\s*file\([^)]*glue_tables\.json\"?\s*\)\s*\)", str(v))
    ]


def test_c_glue_tables_file_is_a_variable(aws: Module):
    """`sluice schema --format glue --streams DIR` output can replace the shipped file."""
    var = aws.variables.get("glue_tables_json")
    assert var is not None, "no variable glue_tables_json (path of a `sluice schema --format glue` output)"
    assert var.get("default", "missing") is None, "glue_tables_json must default to null (the module's own glue_tables.json)"
    decoding = glue_decoding_locals(aws)
    assert any(
        re.search(
            r"jsondecode\(\s*file\(\s*coalesce\(\s*var\.glue_tables_json\s*,\s*\"\$\{path\.module\}/glue_tables\.json\"\s*\)\s*\)\s*\)",
            str(aws.locals[k]),
        )
        for k in decoding
    ), "the Glue tables must be read from var.glue_tables_json, falling back to ${path.module}/glue_tables.json"


def test_g_parallelization_factor_is_held_at_one(aws: Module):
    """aggregate skips records at or below the committed position as redeliveries: concurrent
    batches of one shard (parallelization_factor > 1) would skip each other's records."""
    var = aws.variables.get("aggregate_parallelization_factor")
    assert var is not None, "no variable aggregate_parallelization_factor"
    assert var.get("default") == 1
    conditions = [str(v.get("condition")) for v in blocks(var.get("validation"))]
    assert any(re.search(r"var\.aggregate_parallelization_factor\s*==\s*1\b", c) for c in conditions), (
        f"the validation must allow exactly 1, not a range: {conditions}"
    )
    mappings = aws.resources.get("aws_lambda_event_source_mapping", {})
    assert any(
        "var.aggregate_parallelization_factor" in str(m.get("parallelization_factor")) for m in mappings.values()
    ), "the Kinesis mapping must take parallelization_factor from the validated variable"


def test_c_scenario_projection_comes_from_the_raw_tables(aws: Module):
    """The scenario partition's enum is the streams (raw tables, prefix raw/scenario=<stream>) of
    the decoded file plus "unknown", not a typed-in list that misses the user's own streams."""
    found = [  # in locals (merged into the table parameters) ...
        (f"local.{k}", v["projection.scenario.values"]) for k, v in aws.locals.items()
        if isinstance(v, dict) and "projection.scenario.values" in v
    ]
    for name, body in aws.resources.get("aws_glue_catalog_table", {}).items():  # ... or in a table
        params = body.get("parameters")
        if isinstance(params, dict) and "projection.scenario.values" in params:
            found.append((f"aws_glue_catalog_table.{name}", params["projection.scenario.values"]))
        elif isinstance(params, str):  # a map literal inside merge(...): catch typed-in values
            found += [
                (f"aws_glue_catalog_table.{name}", v)
                for v in re.findall(r'"projection\.scenario\.values"\s*=\s*"([^"$]*)"', params)
            ]
    assert found, "no projection.scenario.values (enum of the scenario partition)"
    decoding = glue_decoding_locals(aws)
    for where, value in found:
        value = str(value)
        assert "${" in value, f"{where}: projection.scenario.values is the literal {value!r}; derive it from the Glue tables file"
        expanded = aws.expand_locals(value, depth=5)
        assert any(f"<{k}>" in expanded for k in decoding), f"{where}: projection.scenario.values does not use the decoded Glue tables file"
        assert "raw/scenario=" in expanded and ".prefix" in expanded, (
            f"{where}: projection.scenario.values must select the raw tables (prefix raw/scenario=<stream>)"
        )
        assert "unknown" in expanded, f"{where}: projection.scenario.values lost \"unknown\" (quarantined records of no stream)"


def _schema_output(fmt: str, *extra: str) -> bytes:
    binary = os.environ["SLUICE_BIN"]
    result = subprocess.run([binary, "schema", "--format", fmt, *extra], capture_output=True, timeout=120)
    assert result.returncode == 0, f"{binary} schema --format {fmt} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


@pytest.mark.skipif(not os.environ.get("SLUICE_BIN"), reason="SLUICE_BIN is not set")
@pytest.mark.parametrize(
    "fmt, relpath, streams",
    [
        ("glue", "terraform/modules/aws/glue_tables.json", None),
        ("kusto", "terraform/modules/azure/kusto/tables.kql", None),
        # The worked example's artifacts sit beside its definition, as a user's would.
        ("glue", "streams/examples/stocks/glue_tables.json", "streams/examples/stocks/stocks.toml"),
        ("kusto", "streams/examples/stocks/tables.kql", "streams/examples/stocks/stocks.toml"),
    ],
)
def test_c_schema_files_match_binary(repo: Repo, fmt: str, relpath: str, streams: str | None):
    extra = ("--streams", str(repo.root / streams)) if streams else ()
    expected = _schema_output(fmt, *extra)
    actual = (repo.root / relpath).read_bytes()
    flag = f" --streams {streams}" if streams else ""
    assert actual == expected, f"{relpath} drifted from `sluice schema --format {fmt}{flag}`: regenerate it with `sluice schema --format {fmt}{flag} > {relpath}`"


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


def test_d_the_merged_view_is_the_cli_view_with_the_binary_columns(repo: Repo, aws: Module):
    """terraform/modules/aws/views/windows_merged.sql is the view `sluice query` creates, and the
    Glue view declares exactly the columns DataFusion gives that view."""
    tf_view = repo.aws / "views" / "windows_merged.sql"
    cli_view = repo.functions / "cli" / "views" / "windows_merged.sql"
    assert tf_view.read_bytes() == cli_view.read_bytes(), "copy functions/cli/views/windows_merged.sql again"
    view = aws.resources["aws_glue_catalog_table"]["windows_merged"]
    assert view["table_type"] == "VIRTUAL_VIEW"
    assert "local.windows_merged_view" in str(view["view_original_text"])
    assert "views/windows_merged.sql" in str(aws.locals["windows_merged_sql"])
    binary = os.environ.get("SLUICE_BIN")
    if not binary:
        pytest.fail("SLUICE_BIN is not set: the view's columns are checked against the binary")
    with tempfile.TemporaryDirectory() as lake:
        out = subprocess.run([binary, "query", "--lake", lake, "--format", "json", "DESCRIBE windows_merged"],
                             check=True, capture_output=True, text=True).stdout
    hive = {"Utf8": "string", "Int64": "bigint", "Float64": "double", "Boolean": "boolean"}
    described = []
    for line in out.splitlines():
        row = json.loads(line)
        kind = "timestamp" if row["data_type"].startswith("Timestamp(ms") else hive[row["data_type"]]
        described.append({"name": row["column_name"], "type": kind})
    assert aws.locals["windows_merged_columns"] == described


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
    unread = set_by_tf - read - set(SET_NOT_READ)
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
        granted = {
            a
            for s in statements
            if any(aws.substitute_string_locals(r).endswith("/" + prefix) for r in s.resources)
            for a in s.actions
        }
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
        fn_src = "\n".join(strip_comments(p.read_text(encoding="utf-8"))
                           for p in rust_files(repo.functions / fn / "src"))
        not_called = {a for a, method in STORE_METHOD_ACTIONS.items() if method not in fn_src}
        for path, needed in calls.items():
            if crate_uses_infra_file(repo, fn, path):
                for action in sorted(needed - actions - not_called):
                    problems.append(f"{fn} uses {path.relative_to(repo.root)} which calls the SDK for {action}")
    assert not problems, "role lacks actions the code needs:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------
# (g) stream definitions
# ---------------------------------------------------------------------------------------

TOML_FILESET = re.compile(r'fileset\(\s*([^,()]+?)\s*,\s*\\?"\*\.toml\\?"\s*\)')


def stream_objects(aws: Module) -> dict[str, dict]:
    """The aws_s3_object resources whose for_each is fileset(<dir>, "*.toml")."""
    return {
        name: body
        for name, body in aws.resources.get("aws_s3_object", {}).items()
        if TOML_FILESET.search(aws.expand_locals(str(body.get("for_each", ""))))
    }


def streams_fileset_dir(aws: Module, expr) -> str:
    """The directory argument of the fileset(<dir>, "*.toml") in expr (locals followed)."""
    m = TOML_FILESET.search(aws.expand_locals(expr if isinstance(expr, str) else json.dumps(expr), depth=5))
    assert m, f'no fileset(<dir>, "*.toml") in {expr!r}'
    return m.group(1)


def env_assignments(aws: Module, fn: str, name: str) -> list[str]:
    """Every expression assigned to the environment variable `name` of fn's Lambda, through the
    locals its environment refers to, with plain string locals substituted."""
    body = lambda_functions(aws)[fn]
    env = blocks(body.get("environment"))
    assert env, f"{fn}: aws_lambda_function has no environment block"
    expr = env[0]["variables"]
    m = re.fullmatch(r"\$\{local\.(\w+)\[each\.key\]\}", str(expr))
    todo = [aws.locals[m.group(1)][fn]] if m else [expr]
    seen: set[str] = set()
    found: list[str] = []
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            if name in value:
                found.append(str(value[name]))
            text = json.dumps(value)
        else:  # an expression such as merge({ NAME = "..." }, local.x)
            text = str(value)
            found += [v.strip('"') for v in re.findall(rf'\b{name}\s*=\s*("[^"]*"|[^,}}\s]+)', text)]
        for ref in re.findall(r"\blocal\.(\w+)", text):
            if ref in aws.locals and ref not in seen:
                seen.add(ref)
                todo.append(aws.locals[ref])
    return [aws.substitute_string_locals(v) for v in found]


def test_g_stream_definitions_are_uploaded(repo: Repo, aws: Module):
    objects = stream_objects(aws)
    assert len(objects) == 1, (
        f'expected one aws_s3_object with for_each = fileset(<streams dir>, "*.toml"), found {sorted(objects)}'
    )
    name, body = next(iter(objects.items()))
    where = f"aws_s3_object.{name}"
    assert str(body.get("bucket")).startswith("${aws_s3_bucket.this."), f"{where}: must go into the lake bucket"
    key = aws.substitute_string_locals(str(body.get("key")))
    assert key in {STREAMS_PREFIX + "${each.value}", STREAMS_PREFIX + "${each.key}"}, (
        f"{where}: key = {body.get('key')!r}, expected {STREAMS_PREFIX}<file name>"
    )
    assert re.fullmatch(r"\$\{file\(.*/\$\{each\.(key|value)\}\"?\)\}", str(body.get("content"))), (
        f"{where}: content must be file(<dir>/<file name>) unchanged"
    )
    assert body.get("content_type") == "application/toml", f"{where}: content_type must be application/toml"
    assert "aws_kms_key.this" in str(body.get("kms_key_id")), f"{where}: must be encrypted with the project key"
    change = str(body.get("source_hash", "")) + str(body.get("etag", ""))
    assert re.search(r"file(md5|sha256)\(.*each\.(key|value)", change), (
        f"{where}: source_hash (or etag) must hash the file, so that an edit uploads it again"
    )

    # The directory: var.streams_dir, by default the repository's streams/ (the shipped definitions).
    directory = aws.expand_locals(str(body.get("for_each")), depth=5)
    assert "var.streams_dir" in directory, f"{where}: the directory must be var.streams_dir when set"
    m = re.search(r"\$\{path\.module\}/([^\"\\]+)", directory)
    assert m, f"{where}: no default directory relative to ${{path.module}}"
    default = (repo.aws / m.group(1)).resolve()
    assert default == (repo.root / "streams").resolve(), f"{where}: default directory {default} is not the repository's streams/"
    assert sorted(default.glob("*.toml")), f"no stream definitions in {default}"


@pytest.mark.parametrize("fn", ["generate", "fetch", "aggregate", "alert"])
def test_g_functions_get_streams_prefix_and_digest(aws: Module, fn: str):
    names = terraform_env_names(aws, fn)
    missing = {"SLUICE_STREAMS_PREFIX", "SLUICE_STREAMS_DIGEST"} - names
    assert not missing, f"{fn}: environment lacks {sorted(missing)}"

    prefixes = env_assignments(aws, fn, "SLUICE_STREAMS_PREFIX")
    assert prefixes and all(p == STREAMS_PREFIX for p in prefixes), (
        f"{fn}: SLUICE_STREAMS_PREFIX = {prefixes}, expected {STREAMS_PREFIX!r} (the key prefix of the uploaded definitions)"
    )

    # The digest hashes the contents of the same files that are uploaded, so that editing one
    # changes the configuration (and replaces warm instances).
    digests = env_assignments(aws, fn, "SLUICE_STREAMS_DIGEST")
    assert digests, f"{fn}: SLUICE_STREAMS_DIGEST is not assigned"
    uploaded = {streams_fileset_dir(aws, b.get("for_each")) for b in stream_objects(aws).values()}
    for digest in digests:
        text = aws.expand_locals(digest, depth=5)
        assert re.search(r"filesha256\(|sha256\(\s*file\(", text), (
            f"{fn}: SLUICE_STREAMS_DIGEST = {digest!r} does not hash the definitions' contents (filesha256)"
        )
        assert streams_fileset_dir(aws, digest) in uploaded, (
            f"{fn}: SLUICE_STREAMS_DIGEST does not hash the files of the uploaded directory"
        )


def test_g_functions_deploy_after_the_definitions(aws: Module):
    objects = stream_objects(aws)
    assert objects, "no aws_s3_object uploads the stream definitions"
    for fn, body in lambda_functions(aws).items():
        deps = " ".join(str(d) for d in body.get("depends_on", []))
        for name in objects:
            assert re.search(rf"\baws_s3_object\.{name}\b", deps), (
                f"{fn}: depends_on lacks aws_s3_object.{name} (a cold start could find no definitions)"
            )


@pytest.mark.parametrize("fn", ["generate", "fetch", "aggregate", "alert"])
def test_g_role_may_list_the_definitions(aws: Module, fn: str):
    """s3:ListBucket on the lake, limited by s3:prefix to the definitions (GetObject on
    streams/* is in REQUIRED_S3)."""
    listing = [
        s for s in role_statements(aws, fn)
        if s.effect == "Allow" and not s.conditional and "s3:ListBucket" in s.actions
        and {aws.substitute_string_locals(p) for p in s.prefixes} & {STREAMS_PREFIX, STREAMS_PREFIX + "*"}
    ]
    assert listing, f"{fn}: no s3:ListBucket with an s3:prefix condition on {STREAMS_PREFIX}*"
    for s in listing:
        assert all(r in {"${local.lake_arn}", "${aws_s3_bucket.this.arn}"} for r in s.resources), (
            f"{fn}: statement {s.sid or s.doc} lists {s.resources}, expected the lake bucket"
        )


# ---------------------------------------------------------------------------------------
# KQL (optional): Microsoft's Kusto parser/binder, when its npm package is at hand
# ---------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("SLUICE_KUSTO_LS"),
    reason="SLUICE_KUSTO_LS (dir of npm @kusto/language-service-next) is not set",
)
@pytest.mark.parametrize("kusto_dir", ["terraform/modules/azure/kusto", "streams/examples/stocks"])
def test_kql_files_parse_and_bind(repo: Repo, kusto_dir: str):
    files = sorted(str(p) for p in (repo.root / kusto_dir).glob("*.kql"))
    assert files, f"no .kql files in {kusto_dir}"
    result = subprocess.run(
        ["node", str(Path(__file__).with_name("kql_check.js")), os.environ["SLUICE_KUSTO_LS"], *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alarms_on_sluice_metrics_name_metrics_the_code_emits(repo: Repo, aws: Module):
    """Alarms in the "sluice" namespace watch figures the aggregate function logs in embedded
    metric format: each metric name is a counter of infra/src/metrics.rs."""
    counters = set(re.findall(r"^\s+(\w+): \"", (repo.root / "infra/src/metrics.rs").read_text(), re.M))
    assert {"records_in", "quarantined", "state_fallbacks", "keys_on_several_shards"} <= counters
    watched = set()
    for name, body in aws.resources.get("aws_cloudwatch_metric_alarm", {}).items():
        metrics = [body] + [m for q in blocks(body.get("metric_query")) for m in blocks(q.get("metric"))]
        for m in metrics:
            if m.get("namespace") == "sluice":
                watched.add(m["metric_name"])
                assert m["metric_name"] in counters, f"alarm {name} watches {m['metric_name']}, which no code emits"
    assert {"state_fallbacks", "keys_on_several_shards", "quarantined", "records_in"} <= watched


def test_the_decoder_accepts_exactly_the_projected_time_range(aws: Module):
    """One accepted time range: the decoder's first accepted day is the first day the Glue
    partition projection covers, so no accepted event lands in a partition Athena never reads."""
    assert env_assignments(aws, "aggregate", "SLUICE_ACCEPTED_FROM") == ["var.projection_start_date"]
    assert "${var.projection_start_date},NOW" in str(aws.locals["projection_common"]["projection.dt.range"])


# ---------------------------------------------------------------------------------------
# (k) Kafka triggers of aggregate: Amazon MSK, self-managed Kafka, Event Hubs (optional)
# ---------------------------------------------------------------------------------------

# What Lambda's MSK mapping calls with the function's role: the AWSLambdaMSKExecutionRole actions
# (cluster, brokers, network interfaces in the cluster's subnets), and with IAM access control
# on the cluster the kafka-cluster actions of a consumer
# (https://docs.aws.amazon.com/lambda/latest/dg/with-msk-permissions.html,
# https://docs.aws.amazon.com/lambda/latest/dg/msk-cluster-auth.html).
MSK_ACTIONS = {
    "kafka:DescribeCluster",
    "kafka:DescribeClusterV2",
    "kafka:GetBootstrapBrokers",
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:ReadData",
}

# Enabling values of the variables that switch the Kafka triggers on.
KAFKA_ON = {
    "msk_cluster_arn": "arn:aws:kafka:region:account:cluster/c/uuid",
    "kafka_bootstrap_servers": ["broker:9096"],
    "eventhubs_kafka_connection_string": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=h",
    "kafka_topics": ["trades"],
}


def inline_locals(aws: Module, expr: str, depth: int = 5) -> str:
    """expr with each `local.X` replaced by X's expression (parenthesised), a few levels deep."""

    def value(m: re.Match) -> str:
        v = aws.locals.get(m.group(1))
        if not isinstance(v, str):
            return m.group(0)
        inner = re.fullmatch(r"\$\{(.*)\}", v, re.S)
        return f"({inner.group(1) if inner else json.dumps(v)})"

    for _ in range(depth):
        expr = re.sub(r"\blocal\.(\w+)\b(?!\[)", value, expr)
    return expr


def gate(aws: Module, expr) -> str:
    """The condition of a `COND ? <something> : <nothing>` count/for_each (through one local),
    with its locals inlined."""
    text = str(expr)
    m = re.fullmatch(r"\$\{local\.(\w+)\}", text)
    if m:
        text = str(aws.locals[m.group(1)])
    m = re.fullmatch(r"\$\{([^?]+?)\s*\?\s*(.+?)\s*:\s*(\{\}|\[\]|0)\s*\}", text, re.S)
    assert m, f"{expr!r} is not of the form COND ? ... : <empty>, so it cannot be off by default"
    return inline_locals(aws, m.group(1))


def eval_gate(cond: str, values: dict) -> bool:
    """Evaluates a gate condition (comparisons, length(), nonsensitive(), !, &&, ||) with the
    given variable values."""
    py = re.sub(r"\bvar\.(\w+)", lambda m: repr(values[m.group(1)]), cond)
    py = py.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    py = re.sub(r"\blength\(", "len(", py)
    py = re.sub(r"\bnonsensitive\(", "(", py)
    assert "local." not in py and "${" not in py, f"cannot evaluate {cond!r}"
    return bool(eval(py, {"__builtins__": {}}, {"len": len}))  # noqa: S307 - the module's own text


def defaults(aws: Module) -> dict:
    return {name: body.get("default") for name, body in aws.variables.items()}


def is_off_by_default_and_on_with(aws: Module, expr, switch: str) -> None:
    cond = gate(aws, expr)
    assert f"var.{switch}" in cond, f"{expr!r} does not depend on var.{switch}: {cond}"
    assert not eval_gate(cond, defaults(aws)), f"{expr!r} is on with the defaults ({cond})"
    assert eval_gate(cond, {**defaults(aws), **KAFKA_ON}), f"{expr!r} stays off with var.{switch} set ({cond})"


def kafka_mappings(aws: Module) -> tuple[dict[str, dict], dict[str, dict]]:
    """(MSK, self-managed) aws_lambda_event_source_mapping bodies by resource name."""
    esms = aws.resources.get("aws_lambda_event_source_mapping", {})
    msk = {n: b for n, b in esms.items() if "var.msk_cluster_arn" in str(b.get("event_source_arn"))}
    smk = {n: b for n, b in esms.items() if blocks(b.get("self_managed_event_source"))}
    return msk, smk


def dynamic_statements(aws: Module, doc_name: str, seen: set[str] | None = None) -> list[tuple[str, dict]]:
    """(for_each, content) of each dynamic statement of a policy document and of the documents it
    merges."""
    seen = set() if seen is None else seen
    if doc_name in seen:
        return []
    seen.add(doc_name)
    body = aws.data["aws_iam_policy_document"][doc_name]
    out = [
        (str(st.get("for_each")), content)
        for dyn in blocks(body.get("dynamic"))
        for st in blocks(dyn.get("statement"))
        for content in blocks(st.get("content"))
    ]
    for src in (body.get("source_policy_documents") or []):
        for ref in re.findall(r"data\.aws_iam_policy_document\.(\w+)", str(src)):
            out.extend(dynamic_statements(aws, ref, seen))
    return out


def aggregate_dynamic_statements(aws: Module) -> list[tuple[str, dict]]:
    out = []
    for doc in role_policy_docs(aws)["aggregate"]:
        out.extend(dynamic_statements(aws, doc))
    return out


def test_k_kafka_mappings_target_aggregate_and_are_off_by_default(aws: Module):
    msk, smk = kafka_mappings(aws)
    assert len(msk) == 1, "expected one aws_lambda_event_source_mapping on var.msk_cluster_arn"
    assert len(smk) == 1, "expected one aws_lambda_event_source_mapping with a self_managed_event_source"
    assert aws.variables["msk_cluster_arn"].get("default") == ""
    assert aws.variables["kafka_bootstrap_servers"].get("default") == []
    assert aws.variables["kafka_topics"].get("default") == []
    for (name, body), switch in ((*msk.items(), "msk_cluster_arn"), (*smk.items(), "kafka_bootstrap_servers")):
        where = f"aws_lambda_event_source_mapping.{name}"
        assert str(body.get("function_name")) == '${aws_lambda_function.this["aggregate"].arn}', f"{where}: must trigger aggregate"
        expr = body.get("for_each", body.get("count"))
        assert expr is not None, f"{where}: no count/for_each, so it cannot be switched off"
        is_off_by_default_and_on_with(aws, expr, switch)


def test_k_kafka_mappings_take_their_settings_from_variables(aws: Module):
    msk, smk = kafka_mappings(aws)
    for name, body in {**msk, **smk}.items():
        where = f"aws_lambda_event_source_mapping.{name}"
        # One mapping per topic (Lambda takes a single topic per mapping), keyed by var.kafka_topics.
        mapping_local = re.fullmatch(r"\$\{local\.(\w+)\}", str(body.get("for_each")))
        assert mapping_local, f"{where}: for_each must be a local map keyed by topic"
        assert re.search(r"for\s+(\w+)\s+in\s+var\.kafka_topics\s*:\s*\1\s*=>", str(aws.locals[mapping_local.group(1)])), (
            f"{where}: local.{mapping_local.group(1)} must be keyed by the topics of var.kafka_topics"
        )
        assert body.get("topics") == ["${each.key}"], f"{where}: topics must be [each.key]"
        assert body.get("batch_size") == "${var.kafka_batch_size}", f"{where}: batch_size must be var.kafka_batch_size"
        assert body.get("starting_position") == "${var.kafka_starting_position}", (
            f"{where}: starting_position must be var.kafka_starting_position"
        )
        # aggregate answers Kafka batches all or nothing unless provisioned pollers let Lambda
        # read partial batch responses (test_kafka_partial_batch_responses_go_with_provisioned_pollers),
        # and the DLQ replay path only understands Kinesis ranges.
        assert "var.kafka_provisioned_pollers > 0" in str(body.get("function_response_types")), (
            f"{where}: partial batch responses only with provisioned pollers")
        assert not blocks(body.get("destination_config")), f"{where}: the DLQ replays Kinesis ranges only"
        # Each mapping joins its own consumer group (unique per Kafka mapping in the account).
        config = "amazon_managed_kafka_event_source_config" if name in msk else "self_managed_kafka_event_source_config"
        assert [c.get("consumer_group_id") for c in blocks(body.get(config))] == ["${each.value}"], (
            f"{where}: {config}.consumer_group_id must be the mapping's own group (each.value)"
        )

    (smk_body,) = smk.values()
    endpoints = [e.get("endpoints") for e in blocks(smk_body.get("self_managed_event_source"))]
    assert endpoints and re.fullmatch(
        r'\$\{join\(",", var\.kafka_bootstrap_servers\)\}', str(endpoints[0].get("KAFKA_BOOTSTRAP_SERVERS"))
    ), "KAFKA_BOOTSTRAP_SERVERS must be the comma-joined var.kafka_bootstrap_servers"
    access = blocks(smk_body.get("source_access_configuration"))
    assert len(access) == 1, "the self-managed mapping needs exactly one SASL source_access_configuration"
    mechanism = inline_locals(aws, str(access[0].get("type")))
    assert "var.kafka_sasl_mechanism" in mechanism and "BASIC_AUTH" in mechanism, (
        f"the SASL type must come from var.kafka_sasl_mechanism, BASIC_AUTH for Event Hubs: {mechanism}"
    )
    secret = inline_locals(aws, str(access[0].get("uri")))
    assert "var.kafka_sasl_secret_arn" in secret and "aws_secretsmanager_secret.eventhubs_kafka" in secret, (
        f"the SASL secret must be var.kafka_sasl_secret_arn or the Event Hubs secret: {secret}"
    )

    position = aws.variables["kafka_starting_position"]
    assert position.get("default") == "TRIM_HORIZON"
    conditions = " ".join(str(v.get("condition")) for v in blocks(position.get("validation")))
    assert "TRIM_HORIZON" in conditions and "LATEST" in conditions and "AT_TIMESTAMP" not in conditions
    sasl = " ".join(str(v.get("condition")) for v in blocks(aws.variables["kafka_sasl_mechanism"].get("validation")))
    assert all(m in sasl for m in ("SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH")), sasl
    batch = " ".join(str(v.get("condition")) for v in blocks(aws.variables["kafka_batch_size"].get("validation")))
    assert "10000" in batch, "kafka_batch_size must be validated against Lambda's 10000"


def test_k_provisioned_pollers_are_optional_and_the_provider_supports_them(repo: Repo, aws: Module):
    msk, smk = kafka_mappings(aws)
    for name, body in {**msk, **smk}.items():
        dyn = [d["provisioned_poller_config"] for d in blocks(body.get("dynamic")) if "provisioned_poller_config" in d]
        assert dyn, f"aws_lambda_event_source_mapping.{name}: no dynamic provisioned_poller_config"
        assert re.fullmatch(r"\$\{var\.kafka_provisioned_pollers\s*>\s*0\s*\?\s*\[1\]\s*:\s*\[\]\}", str(dyn[0]["for_each"]))
        assert not blocks(body.get("provisioned_poller_config")), "provisioned mode must not be set unconditionally"
    assert aws.variables["kafka_provisioned_pollers"].get("default") == 0
    # provisioned_poller_config arrived in hashicorp/aws 5.79 (terraform-provider-aws#40303).
    doc = parse_tf(repo.aws / "versions.tf")
    aws_req = doc["terraform"][0]["required_providers"][0]["aws"]
    m = re.fullmatch(r">=\s*(\d+)\.(\d+)(?:\.\d+)?", str(aws_req["version"]).strip())
    assert m and (int(m.group(1)), int(m.group(2))) >= (5, 79), f"hashicorp/aws {aws_req['version']} lacks provisioned_poller_config"


def test_k_aggregate_may_read_msk_when_enabled(aws: Module):
    statements = aggregate_dynamic_statements(aws)
    granted: dict[str, list[dict]] = {}
    for for_each, content in statements:
        for action in content.get("actions", []):
            granted.setdefault(action, []).append({"for_each": for_each, **content})
    missing = MSK_ACTIONS - set(granted)
    assert not missing, f"aggregate's role lacks the MSK mapping's {sorted(missing)}"
    for action in MSK_ACTIONS:
        for st in granted[action]:
            is_off_by_default_and_on_with(aws, st["for_each"], "msk_cluster_arn")
            resources = st["resources"] if isinstance(st["resources"], list) else [st["resources"]]
            text = inline_locals(aws, " ".join(map(str, resources)))
            if action in UNSCOPABLE_ACTIONS:
                continue
            assert "*" not in resources, f"{action} must not use Resource \"*\""
            if action.startswith("kafka:") or action in {"kafka-cluster:Connect"}:
                assert resources == ["${var.msk_cluster_arn}"], f"{action} must be limited to the cluster: {resources}"
            elif action in {"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"}:
                assert "var.msk_cluster_arn" in text and ":topic/" in text and "var.kafka_topics" in text, (
                    f"{action} must be limited to the topics of var.kafka_topics on the cluster: {text}"
                )
            elif action in {"kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"}:
                assert "var.msk_cluster_arn" in text and ":group/" in text, (
                    f"{action} must be limited to the mappings' consumer groups on the cluster: {text}"
                )
            elif action.startswith("ec2:"):
                assert re.fullmatch(
                    r"arn:\$\{local\.partition\}:ec2:\$\{local\.region\}:\$\{local\.account_id\}:\*", " ".join(resources)
                ), f"{action} must be limited to this account and region: {resources}"


def test_k_aggregate_may_read_the_kafka_sasl_secret_when_enabled(aws: Module):
    secret_reads = [
        (for_each, content) for for_each, content in aggregate_dynamic_statements(aws)
        if "secretsmanager:GetSecretValue" in content.get("actions", [])
    ]
    assert secret_reads, "aggregate's role cannot read the self-managed mapping's SASL secret"
    for for_each, content in secret_reads:
        is_off_by_default_and_on_with(aws, for_each, "kafka_bootstrap_servers")
        text = inline_locals(aws, " ".join(map(str, content.get("resources", []))))
        assert "*" not in content.get("resources", []) and "var.kafka_sasl_secret_arn" in text and (
            "aws_secretsmanager_secret.eventhubs_kafka" in text
        ), f"GetSecretValue must be limited to the mapping's secret: {text}"
    # The Event Hubs secret is encrypted with the project key, which "common" lets aggregate decrypt.
    secret = aws.resources["aws_secretsmanager_secret"]["eventhubs_kafka"]
    assert "aws_kms_key.this" in str(secret.get("kms_key_id")), "the Event Hubs secret must use the project key"
    decrypt = [
        s for s in role_statements(aws, "aggregate")
        if s.effect == "Allow" and not s.conditional and "kms:Decrypt" in s.actions
    ]
    assert any("aws_kms_key.this" in r for s in decrypt for r in s.resources), "aggregate may not decrypt with the project key"


def test_k_eventhubs_secret_only_with_a_connection_string(aws: Module):
    var = aws.variables["eventhubs_kafka_connection_string"]
    assert var.get("sensitive") is True and var.get("default") == ""
    secrets = {"aws_secretsmanager_secret": "eventhubs_kafka", "aws_secretsmanager_secret_version": "eventhubs_kafka"}
    for rtype, name in secrets.items():
        body = aws.resources.get(rtype, {}).get(name)
        assert body is not None, f"{rtype}.{name} is missing"
        is_off_by_default_and_on_with(aws, body.get("count"), "eventhubs_kafka_connection_string")
    value = str(aws.resources["aws_secretsmanager_secret_version"]["eventhubs_kafka"].get("secret_string"))
    assert re.search(r'username\s*=\s*"\$ConnectionString"', value) and "password = var.eventhubs_kafka_connection_string" in value, (
        f'the Event Hubs secret must be {{"username":"$ConnectionString","password":<connection string>}}: {value}'
    )


def test_k_azure_exposes_what_the_kafka_consumer_needs(azure: Module):
    rules = azure.resources["azurerm_eventhub_authorization_rule"]["this"]
    keyed = rules.get("for_each")
    assert isinstance(keyed, dict) and "aggregate" in keyed, "no SAS rule for the aggregate Kafka consumer"
    assert keyed["aggregate"] == {"send": False, "listen": True}, "the aggregate rule must be listen-only"
    assert rules.get("manage") is False
    outputs = azure.outputs
    assert re.fullmatch(
        r"\$\{azurerm_eventhub_namespace\.this\.name\}\.servicebus\.windows\.net:9093",
        str(outputs["kafka_bootstrap_server"]["value"]),
    )
    assert outputs["kafka_topic"]["value"] == "${azurerm_eventhub.this.name}"
    listen = outputs["kafka_listen_connection_string"]
    assert listen.get("sensitive") is True
    assert listen["value"] == '${azurerm_eventhub_authorization_rule.this["aggregate"].primary_connection_string}'


def test_kafka_partial_batch_responses_go_with_provisioned_pollers(aws: Module):
    """Lambda reads a Kafka partial batch response only with provisioned pollers: the mappings
    ask for one exactly then, and aggregate is told to give one (SLUICE_KAFKA_PARTIAL_BATCH)."""
    mappings = aws.resources["aws_lambda_event_source_mapping"]
    for name in ("msk", "kafka"):
        types = str(mappings[name]["function_response_types"])
        assert "var.kafka_provisioned_pollers > 0" in types and "ReportBatchItemFailures" in types, (name, types)
    text = (aws.directory / "lambda.tf").read_text()
    assert re.search(r'SLUICE_KAFKA_PARTIAL_BATCH\s*=\s*var\.kafka_provisioned_pollers > 0 \? "true" : "false"', text)
