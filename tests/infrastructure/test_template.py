"""template.yaml lints clean and wires what CONTRACT.md section 1 promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ocr_poller_tools.sandbox import deploy_stack, load_template, start_moto_server

from ocr_poller.adapters.eventbridge import COMPLETED, FAILED, SOURCE
from ocr_poller.request import ENDPOINTS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
BIN = Path(sys.executable).parent  # the tools installed beside the interpreter running the tests
# The ADOT layer for Python on arm64, as AWS publishes it (any layer ARN of that shape would do).
OTEL_LAYER_ARN = "arn:aws:lambda:us-east-1:901920570463:layer:aws-otel-python-arm64-ver-1-32-0:2"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def template_with_layer(directory: Path) -> Path:
    """template.yaml as deployed with OpenTelemetryLayerArn set (its default replaced by a layer's ARN)."""
    text = TEMPLATE_PATH.read_text()
    block = re.search(r"^  OpenTelemetryLayerArn:\n(?:    .*\n)+", text, re.MULTILINE)
    assert block is not None
    patched = block[0].replace('Default: ""', f"Default: {OTEL_LAYER_ARN}")
    assert patched != block[0]
    path = directory / "template-with-otel-layer.yaml"
    path.write_text(text.replace(block[0], patched))
    return path


def _resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def _function(template: dict[str, Any]) -> Any:
    (function,) = _resources_of_type(template, "AWS::Serverless::Function").values()
    return function["Properties"]


def _referenced_resource(template: dict[str, Any], value: Any) -> Any:
    """The template resource a `Ref` or `Fn::GetAtt` names."""
    logical_id = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
    return template["Resources"][logical_id]


def _parameter_default(template: dict[str, Any], value: Any) -> Any:
    """The default of the parameter a `Ref` names."""
    return template["Parameters"][value["Ref"]]["Default"]


def _environment(template: dict[str, Any]) -> Any:
    return _function(template)["Environment"]["Variables"]


def _event_of_type(template: dict[str, Any], event_type: str) -> Any:
    (event,) = [event for event in _function(template)["Events"].values() if event["Type"] == event_type]
    return event["Properties"]


def _as_list(value: Any) -> list[Any]:
    """IAM's one-or-many fields (Action, Resource) as a list."""
    return value if isinstance(value, list) else [value]


def _role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of every role's inline policies, those under a condition (Fn::If) included."""
    statements: list[dict[str, Any]] = []
    for role in _resources_of_type(template, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Fn::If" in statement:
                    statements += [s for s in statement["Fn::If"][1:] if s != {"Ref": "AWS::NoValue"}]
                else:
                    statements.append(statement)
    return statements


def _statement(template: dict[str, Any], sid: str) -> dict[str, Any]:
    (statement,) = [statement for statement in _role_statements(template) if statement.get("Sid") == sid]
    return statement


KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(params=["as-is", "with-a-kms-key", "with-an-opentelemetry-layer"])
def template_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """template.yaml, and copies whose SecretKmsKeyArn defaults to a key or OpenTelemetryLayerArn to a
    layer (their optional parts linted)."""
    if request.param == "as-is":
        return TEMPLATE_PATH
    if request.param == "with-an-opentelemetry-layer":
        return template_with_layer(tmp_path)
    text = TEMPLATE_PATH.read_text()
    block = text.index("  SecretKmsKeyArn:")
    default = text.index('Default: ""', block)
    copy = tmp_path / "template.yaml"
    copy.write_text(text[:default] + f'Default: "{KMS_KEY_ARN}"' + text[default + len('Default: ""') :])
    return copy


def _run_tool(
    tool: str, *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """One of the venv's tools, its output captured, within two minutes."""
    return subprocess.run(
        [str(BIN / tool), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_cfn_lint_reports_nothing_not_even_informational(template_path: Path) -> None:
    # Given the template
    # When cfn-lint checks it with informational rules included
    result = _run_tool("cfn-lint", "--include-checks", "I", "--", str(template_path))

    # Then it finds nothing
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_sam_validate_lint_passes_offline(template_path: Path, tmp_path: Path) -> None:
    # Given a SAM CLI config that has just checked for updates and sends no telemetry
    (tmp_path / "metadata.json").write_text(
        json.dumps({"lastVersionCheck": time.time(), "telemetryEnabled": False})
    )
    env = {
        **os.environ,
        "__SAM_CLI_APP_DIR": str(tmp_path),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Anything that still tries the network fails here instead of leaving the machine.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }

    # When sam validates and lints it
    result = _run_tool("sam", "validate", "--lint", "--template", str(template_path), env=env, cwd=tmp_path)

    # Then it is valid
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout


def test_one_function_whose_handler_is_a_module_under_src(template: dict[str, Any]) -> None:
    # Given the template's one function
    function = _function(template)

    # When its handler is located in its code
    module, _, name = function["Handler"].rpartition(".")
    module_file = ROOT / function["CodeUri"] / (module.replace(".", "/") + ".py")

    # Then the code is in src/ and the handler is the package's lambda_handler
    assert function["CodeUri"].rstrip("/") == "src"
    assert (module, name) == ("ocr_poller.handler", "lambda_handler")
    assert module_file.is_file()


def test_function_may_requeue_itself(template: dict[str, Any]) -> None:
    # Given the function
    function = _function(template)

    # When its recursive-loop setting is read
    recursive_loop = function["RecursiveLoop"]

    # Then Lambda does not cut the poll chain
    assert recursive_loop == "Allow"


def test_sqs_event_reports_batch_item_failures_from_the_poll_queue(template: dict[str, Any]) -> None:
    # Given the function's SQS event source
    event = _event_of_type(template, "SQS")

    # When its queue and response types are read
    queue = _referenced_resource(template, event["Queue"])
    poll_queue = _referenced_resource(template, _environment(template)["POLL_QUEUE_URL"])

    # Then it consumes the poll queue and reports failures per message
    assert queue is poll_queue
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_eventbridge_rule_matches_the_contract_defaults_through_parameters(template: dict[str, Any]) -> None:
    # Given the function's EventBridge rule
    event = _event_of_type(template, "EventBridgeRule")

    # When its pattern is read
    (source,) = event["Pattern"]["source"]
    (detail_type,) = event["Pattern"]["detail-type"]

    # Then both fields are parameters whose defaults are the contract's
    assert _parameter_default(template, source) == "ocr.tasks"
    assert _parameter_default(template, detail_type) == "OCR Task Submitted"
    assert event["EventBusName"] == _environment(template)["EVENT_BUS_NAME"]


def test_poll_queue_redrives_to_the_dead_letter_queue(template: dict[str, Any]) -> None:
    # Given the poll queue and the dead-letter queue the function is told about
    environment = _environment(template)
    poll_queue = _referenced_resource(template, environment["POLL_QUEUE_URL"])
    dead_letter_queue_id = environment["DEAD_LETTER_QUEUE_URL"]["Ref"]

    # When the poll queue's redrive policy is read
    redrive = poll_queue["Properties"]["RedrivePolicy"]

    # Then it sends to that dead-letter queue after a few receives
    assert poll_queue["Type"] == "AWS::SQS::Queue"
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letter_queue_id, "Arn"]}
    assert 1 <= redrive["maxReceiveCount"] <= 10


@pytest.mark.parametrize(
    ("variable", "resource_type"),
    [
        ("RESULTS_TABLE", "AWS::DynamoDB::Table"),
        ("RESULTS_BUCKET", "AWS::S3::Bucket"),
        ("POLL_QUEUE_URL", "AWS::SQS::Queue"),
        ("DEAD_LETTER_QUEUE_URL", "AWS::SQS::Queue"),
    ],
)
def test_environment_references_resources_of_the_template(
    template: dict[str, Any], variable: str, resource_type: str
) -> None:
    # Given the function's environment
    value = _environment(template)[variable]

    # When the resource it references is looked up
    resource = _referenced_resource(template, value)

    # Then it is a resource of this template of the right type
    assert resource["Type"] == resource_type


@pytest.mark.parametrize(
    ("variable", "default"),
    [
        ("ASPOSE_BASE_URL", "https://api.aspose.cloud"),
        ("POLL_INITIAL_DELAY_SECONDS", 2),
        ("POLL_MAX_DELAY_SECONDS", 900),
        ("POLL_DEADLINE_SECONDS", 86400),
        ("POLL_LAG_RATIO", 0.25),
        ("RESULTS_PREFIX", "results/"),
        ("DEFAULT_ENDPOINT", "RecognizeLabel"),
        ("EVENT_BUS_NAME", "default"),
        ("INLINE_TEXT_BYTES", 16384),
    ],
)
def test_configuration_defaults_are_the_contracts(
    template: dict[str, Any], variable: str, default: Any
) -> None:
    # Given a configuration variable of the function
    value = _environment(template)[variable]

    # When the parameter behind it is read
    parameter_default = _parameter_default(template, value)

    # Then its default is the one CONTRACT.md section 2 names
    assert parameter_default == default


def test_default_endpoint_parameter_allows_exactly_the_v5_endpoints(template: dict[str, Any]) -> None:
    # Given the DEFAULT_ENDPOINT parameter
    parameter = template["Parameters"][_environment(template)["DEFAULT_ENDPOINT"]["Ref"]]

    # When its allowed values are read
    allowed = parameter["AllowedValues"]

    # Then they are the endpoints the poller accepts
    assert sorted(allowed) == sorted(ENDPOINTS)


def test_poll_queue_visibility_timeout_is_at_least_six_function_timeouts(template: dict[str, Any]) -> None:
    # Given the function and its poll queue
    function = _function(template)
    poll_queue = _referenced_resource(template, _environment(template)["POLL_QUEUE_URL"])

    # When their timeouts are compared
    visibility_timeout = poll_queue["Properties"]["VisibilityTimeout"]

    # Then a slow batch is not redelivered while it is still being worked on
    assert visibility_timeout >= 6 * function["Timeout"]


def test_results_bucket_blocks_public_access_and_plain_http(template: dict[str, Any]) -> None:
    # Given the results bucket and the policies attached to it
    bucket_id = _environment(template)["RESULTS_BUCKET"]["Ref"]
    bucket = template["Resources"][bucket_id]
    statements = [
        statement
        for policy in _resources_of_type(template, "AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": bucket_id}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]

    # When the TLS-only statements are picked out
    tls_denials = [
        statement
        for statement in statements
        if statement["Effect"] == "Deny"
        and statement["Condition"].get("Bool", {}).get("aws:SecureTransport") is False
    ]

    # Then every public access is blocked and requests without TLS are denied
    assert set(bucket["Properties"]["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["Properties"]["PublicAccessBlockConfiguration"]) == 4
    assert len(tls_denials) == 1


def test_results_table_is_keyed_by_task_id_and_expires_records(template: dict[str, Any]) -> None:
    # Given the results table
    table = _referenced_resource(template, _environment(template)["RESULTS_TABLE"])["Properties"]

    # When its key and TTL are read
    key_schema = table["KeySchema"]
    attribute_types = {item["AttributeName"]: item["AttributeType"] for item in table["AttributeDefinitions"]}

    # Then the partition key is the string taskId and records expire on expiresAt
    assert key_schema == [{"AttributeName": "taskId", "KeyType": "HASH"}]
    assert attribute_types == {"taskId": "S"}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}


def test_every_allowed_action_is_scoped_to_a_resource_except_xray_and_task_tokens(
    template: dict[str, Any],
) -> None:
    # Given every Allow statement of every role in the template
    statements = [statement for statement in _role_statements(template) if statement["Effect"] == "Allow"]

    # When the statements on every resource are picked out
    unscoped_actions = {
        action
        for statement in statements
        if "*" in _as_list(statement["Resource"])
        for action in _as_list(statement["Action"])
    }

    # Then only X-Ray and Step Functions' task token callbacks, which have no resource-level
    # permissions, are unscoped
    assert statements
    assert unscoped_actions == {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
    }


def test_function_uses_the_templates_scoped_role(template: dict[str, Any]) -> None:
    # Given the function
    function = _function(template)

    # When its role is looked up
    role = _referenced_resource(template, function["Role"])

    # Then it is the template's role, so SAM attaches no managed policy that allows every queue
    assert role["Type"] == "AWS::IAM::Role"
    assert "Policies" not in function


def test_dead_letter_queue_alarm_watches_the_dead_letter_queue(template: dict[str, Any]) -> None:
    # Given the alarms on SQS metrics
    alarms = [
        alarm["Properties"]
        for alarm in _resources_of_type(template, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == "AWS/SQS"
    ]
    dead_letter_queue_id = _environment(template)["DEAD_LETTER_QUEUE_URL"]["Ref"]

    # When the queue each one watches is read
    watched = [alarm["Dimensions"][0]["Value"] for alarm in alarms]

    # Then the dead-letter queue's visible messages raise an alarm
    assert watched == [{"Fn::GetAtt": [dead_letter_queue_id, "QueueName"]}]
    assert alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible"


# Issue 10, item 9: what the role and the function allow, whatever the API or the parameters say


def test_function_concurrency_is_bounded_whatever_drives_it(template: dict[str, Any]) -> None:
    # Given the function, its queue's scaling and the parameters behind both
    function = _function(template)
    reserved = template["Parameters"][function["ReservedConcurrentExecutions"]["Ref"]]
    maximum = template["Parameters"][
        _event_of_type(template, "SQS")["ScalingConfig"]["MaximumConcurrency"]["Ref"]
    ]

    # Then EventBridge-driven invocations are bounded too, and by default the queue keeps below that bound
    # with room left for first checks triggered by events
    assert reserved["Type"] == "Number" and reserved["MinValue"] >= 2
    assert maximum["Default"] < reserved["Default"]


def test_completion_events_may_carry_only_the_pollers_source(template: dict[str, Any]) -> None:
    # Given the statement that allows PutEvents
    statement = _statement(template, "CompletionEvents")

    # Then it is limited to the poller's source and detail types, never the trigger's
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {
        "StringEquals": {"events:source": SOURCE, "events:detail-type": [COMPLETED, FAILED]}
    }
    assert _parameter_default(template, {"Ref": "TriggerSource"}) != SOURCE


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("results/", True),
        ("", True),
        ("ocr/results/", True),
        ("team-a_1.b/", True),
        ("results", False),
        ("/results/", False),
        ("results//", False),
        ("ocr//results/", False),
        ("results/*", False),
        ("results/x", False),
    ],
)
def test_results_prefix_must_end_with_a_slash(template: dict[str, Any], prefix: str, allowed: bool) -> None:
    # Given the ResultsPrefix parameter and the S3 grant built from it
    parameter = template["Parameters"]["ResultsPrefix"]
    grant = _statement(template, "ResultObjects")

    # Then only prefixes that end a folder are accepted, so that the grant cannot reach a sibling folder
    assert bool(re.fullmatch(parameter["AllowedPattern"], prefix)) is allowed
    assert grant["Resource"] == {"Fn::Sub": "${ResultsBucket.Arn}/${ResultsPrefix}*"}


def test_a_customer_managed_key_of_the_secret_may_decrypt_through_secrets_manager_only(
    template: dict[str, Any],
) -> None:
    # Given the optional KMS statement and the condition that adds it
    statements = [
        statement["Fn::If"]
        for role in _resources_of_type(template, "AWS::IAM::Role").values()
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if "Fn::If" in statement
    ]
    ((condition, statement, otherwise),) = statements

    # Then it is there exactly when a key is named, scoped to that key and to Secrets Manager's use of it
    assert template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SecretKmsKeyArn"}, ""]}]
    }
    assert template["Parameters"]["SecretKmsKeyArn"]["Default"] == ""
    assert re.fullmatch(template["Parameters"]["SecretKmsKeyArn"]["AllowedPattern"], KMS_KEY_ARN)
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert (statement["Action"], statement["Resource"]) == ("kms:Decrypt", {"Ref": "SecretKmsKeyArn"})
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}
    }


def test_tracing_is_lambdas_own_and_opentelemetry_an_opt_in_layer(template: dict[str, Any]) -> None:
    # Given the function and the OpenTelemetry layer parameter
    function = _function(template)
    no_value = {"Ref": "AWS::NoValue"}

    # When its tracing, layers and exec wrapper are read
    layers = function["Layers"]
    wrapper = _environment(template)["AWS_LAMBDA_EXEC_WRAPPER"]

    # Then Lambda traces it, and the layer and its wrapper are there exactly when the parameter is set
    assert function["Tracing"] == "Active"
    assert template["Parameters"]["OpenTelemetryLayerArn"]["Default"] == ""
    assert template["Conditions"]["HasOpenTelemetryLayer"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "OpenTelemetryLayerArn"}, ""]}]
    }
    assert layers == {"Fn::If": ["HasOpenTelemetryLayer", [{"Ref": "OpenTelemetryLayerArn"}], no_value]}
    assert wrapper == {"Fn::If": ["HasOpenTelemetryLayer", "/opt/otel-instrument", no_value]}


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = start_moto_server()
    yield server.url
    server.stop()


@pytest.mark.parametrize(("with_layer", "wrapper"), [(False, None), (True, "/opt/otel-instrument")])
def test_function_environment_has_the_exec_wrapper_only_with_the_layer(
    moto_url: str, tmp_path: Path, with_layer: bool, wrapper: str | None
) -> None:
    # Given the template, with or without the layer's ARN
    path = template_with_layer(tmp_path) if with_layer else TEMPLATE_PATH

    # When the sandbox deploys it and resolves the function's environment
    stack = deploy_stack(moto_url, path, name_suffix=uuid.uuid4().hex[:12])

    # Then the exec wrapper is set only when there is a layer to provide it
    assert stack.function_environment.get("AWS_LAMBDA_EXEC_WRAPPER") == wrapper
    assert stack.function_environment["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_logs_are_json_filtered_by_level_without_lambdas_per_invocation_lines(
    template: dict[str, Any],
) -> None:
    # Given the function's logging configuration and the log level parameter
    logging = _function(template)["LoggingConfig"]
    levels = template["Parameters"]["LogLevel"]["AllowedValues"]
    mapping = template["Mappings"]["LambdaLogLevel"]

    # When Lambda's level for each of the parameter's values is looked up
    lambda_levels = {level: mapping[level]["Level"] for level in levels}

    # Then Lambda writes only its warnings and errors, and filters ours at the level Powertools logs at
    assert logging["LogFormat"] == "JSON"
    assert logging["SystemLogLevel"] == "WARN"
    assert logging["ApplicationLogLevel"] == {
        "Fn::FindInMap": ["LambdaLogLevel", {"Ref": "LogLevel"}, "Level"]
    }
    assert lambda_levels == {
        "DEBUG": "DEBUG",
        "INFO": "INFO",
        "WARNING": "WARN",
        "ERROR": "ERROR",
        "CRITICAL": "FATAL",
    }
