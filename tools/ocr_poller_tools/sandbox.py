"""Dev/test sandbox: moto's server on loopback with the template's resources; the handler never imports it."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.nodes import Node, ScalarNode, SequenceNode

from ocr_poller.completion import SOURCE as COMPLETION_EVENT_SOURCE

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_sqs.literals import QueueAttributeNameType

# moto accepts any credentials; explicit ones keep a developer's real profile out of the sandbox.
SANDBOX_ACCESS_KEY_ID = "testing"
SANDBOX_SECRET_ACCESS_KEY = "testing"
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"

_API_RULE_KEYS = {"ServerSideEncryptionByDefault": "ApplyServerSideEncryptionByDefault"}
_NAME_SUFFIX = re.compile(r"[a-z0-9-]{1,24}")
_NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


class SandboxError(RuntimeError):
    """The template uses something the sandbox cannot build."""


class _CfnConstructor(SafeConstructor):
    """Safe YAML constructor that also reads CloudFormation's short tags (!Ref, !GetAtt, !Sub, ...)."""


def _intrinsic(constructor: SafeConstructor, tag_suffix: str, node: Node) -> dict[str, Any]:
    """Turn `!Name value` into the long form `{"Fn::Name": value}` (`Ref` and `Condition` keep the name)."""
    key = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, ScalarNode):
        value = constructor.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, SequenceNode):
        value = constructor.construct_sequence(node, deep=True)
    else:
        value = constructor.construct_mapping(node, deep=True)
    return {key: value}


_CfnConstructor.add_multi_constructor("!", _intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    """Read a CloudFormation/SAM YAML template, intrinsic functions in their long form."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _CfnConstructor
    template = yaml.load(path.read_text(encoding="utf-8"))
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise SandboxError(f"{path} is not a CloudFormation template")
    return template


class MotoServer:
    """moto's server running in a thread of this process, on loopback."""

    def __init__(self, server: ThreadedMotoServer) -> None:
        host, port = server.get_host_and_port()
        self._server = server
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self._server.stop()


def start_moto_server(port: int = 0) -> MotoServer:
    """Start moto's server on 127.0.0.1; port 0 lets the OS pick a free one."""
    from moto.server import ThreadedMotoServer  # moto is a test dependency only

    # One access-log line per request drowns the output of a failing test.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return MotoServer(server)


@dataclass(frozen=True)
class Stack:
    """The physical names of one sandbox deployment of the template."""

    table_name: str
    bucket_name: str
    queue_url: str
    dlq_url: str
    event_bus_name: str
    events_queue_url: str  # receives every event with source `ocr.poller` put on the bus
    region: str
    credentials_secret_arn: str
    function_environment: Mapping[str, str]  # the function's variables from the template, resolved
    function_memory_mb: int  # the function's MemorySize and Timeout, for the context Lambda would pass
    function_timeout_seconds: int


def deploy_stack(
    endpoint_url: str, template_path: Path, *, name_suffix: str, region: str = "us-east-1"
) -> Stack:
    """Create the resources the template's function is wired to, with the template's properties, in moto.

    Each stack gets its own event bus and credentials secret, so stacks sharing one server do not see each
    other's events. Alarms, IAM, the bucket policy and lifecycle change nothing in moto and are not built.
    """
    if not _NAME_SUFFIX.fullmatch(name_suffix):
        raise ValueError(f"name_suffix {name_suffix!r} must match {_NAME_SUFFIX.pattern}")
    template = load_template(template_path)
    deployment = _Deployment(template, endpoint_url=endpoint_url, region=region, name_suffix=name_suffix)
    function = function_properties(template)
    environment_variables = function.get("Environment", {}).get("Variables", {})
    resolved = {name: deployment.resolve(value) for name, value in environment_variables.items()}
    function_environment = {name: str(value) for name, value in resolved.items() if value is not _NO_VALUE}
    events_queue_url = deployment.observe_completion_events()
    return Stack(
        table_name=function_environment["RESULTS_TABLE"],
        bucket_name=function_environment["RESULTS_BUCKET"],
        queue_url=function_environment["POLL_QUEUE_URL"],
        dlq_url=function_environment["DEAD_LETTER_QUEUE_URL"],
        event_bus_name=deployment.event_bus_name,
        events_queue_url=events_queue_url,
        region=region,
        credentials_secret_arn=deployment.credentials_secret_arn,
        function_environment=function_environment,
        function_memory_mb=int(function["MemorySize"]),
        function_timeout_seconds=int(function["Timeout"]),
    )


def environment(stack: Stack, endpoint_url: str, **overrides: str) -> dict[str, str]:
    """The function's environment for this stack, with boto3 pointed at the sandbox."""
    return {
        **stack.function_environment,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_REGION": stack.region,
        "AWS_ACCESS_KEY_ID": SANDBOX_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SANDBOX_SECRET_ACCESS_KEY,
        **overrides,
    }


def function_properties(template: Mapping[str, Any]) -> dict[str, Any]:
    """Properties of the template's one serverless function."""
    functions = [
        resource.get("Properties", {})
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]
    if len(functions) != 1:
        raise SandboxError(f"expected one AWS::Serverless::Function, found {len(functions)}")
    return cast(dict[str, Any], functions[0])


_Attributes = dict[str, str]  # what Ref and Fn::GetAtt answer for one resource; "Ref" is the Ref value


class _Deployment:
    """Creates template resources on demand, in dependency order, as references to them are resolved."""

    def __init__(
        self, template: Mapping[str, Any], *, endpoint_url: str, region: str, name_suffix: str
    ) -> None:
        session = boto3.session.Session(
            aws_access_key_id=SANDBOX_ACCESS_KEY_ID,
            aws_secret_access_key=SANDBOX_SECRET_ACCESS_KEY,
            region_name=region,
        )
        self.sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        self.s3 = session.client("s3", endpoint_url=endpoint_url)
        self.events = session.client("events", endpoint_url=endpoint_url)
        self.secrets = session.client("secretsmanager", endpoint_url=endpoint_url)
        self.region = region
        self.name_suffix = name_suffix
        self.resources: Mapping[str, Any] = template["Resources"]
        self.conditions: Mapping[str, Any] = template.get("Conditions", {})
        self.created: dict[str, _Attributes] = {}

        self.event_bus_name = f"ocr-poller-{name_suffix}"
        self.events.create_event_bus(Name=self.event_bus_name)
        self.credentials_secret_arn = self.secrets.create_secret(
            Name=f"aspose-credentials-{name_suffix}",
            SecretString=json.dumps({"clientId": SANDBOX_CLIENT_ID, "clientSecret": SANDBOX_CLIENT_SECRET}),
        )["ARN"]
        # As `sam deploy --parameter-overrides` would: defaults, plus what this stack provides itself.
        self.parameters = {
            name: str(parameter["Default"])
            for name, parameter in template.get("Parameters", {}).items()
            if "Default" in parameter
        } | {"AsposeCredentialsSecretArn": self.credentials_secret_arn, "EventBusName": self.event_bus_name}

    def resolve(self, value: Any) -> Any:
        """Replace Ref and Fn::GetAtt by their values, creating the resources they name."""
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if value.keys() == {"Ref"}:
            name = value["Ref"]
            return self.parameters[name] if name in self.parameters else self._resource(name)["Ref"]
        if value.keys() == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self.resolve(when_true if self._condition({"Condition": condition}) else when_false)
        if value.keys() == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            return self._resource(logical_id)[attribute]
        unsupported = [key for key in value if key.startswith("Fn::")]
        if unsupported:
            raise SandboxError(f"{unsupported[0]} is not supported by the sandbox")
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _condition(self, value: Any) -> bool:
        """A template condition (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition) with these parameters."""
        (kind, argument), *_ = value.items()
        if kind == "Condition":
            return self._condition(self.conditions[argument])
        if kind == "Fn::Equals":
            left, right = (str(self.resolve(side)) for side in argument)
            return left == right
        if kind in ("Fn::Not", "Fn::And", "Fn::Or"):
            values = [self._condition(item) for item in argument]
            return {"Fn::Not": not values[0], "Fn::And": all(values), "Fn::Or": any(values)}[kind]
        raise SandboxError(f"{kind} is not supported by the sandbox in a condition")

    def observe_completion_events(self) -> str:
        """Forward the bus's `ocr.poller` events to a new queue, so tests can read them; return its URL."""
        name = f"completion-events-{self.name_suffix}"
        queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.events.put_rule(
            Name=name,
            EventBusName=self.event_bus_name,
            EventPattern=json.dumps({"source": [COMPLETION_EVENT_SOURCE]}),
        )
        self.events.put_targets(
            Rule=name,
            EventBusName=self.event_bus_name,
            Targets=[{"Id": "sandbox-observer", "Arn": self._queue_arn(queue_url)}],
        )
        return queue_url

    def _resource(self, logical_id: str) -> _Attributes:
        if logical_id not in self.created:
            if logical_id not in self.resources:
                raise SandboxError(f"{logical_id} is neither a parameter nor a resource of the template")
            definition = self.resources[logical_id]
            create = _CREATORS.get(definition["Type"])
            if create is None:
                raise SandboxError(f"{logical_id}: the sandbox cannot create a {definition['Type']}")
            properties = self.resolve(definition.get("Properties", {}))
            # Lower case suits every service's naming rules (S3 bucket names allow no capitals).
            self.created[logical_id] = create(self, f"{logical_id}-{self.name_suffix}".lower(), properties)
        return self.created[logical_id]

    def _create_queue(self, name: str, properties: Mapping[str, Any]) -> _Attributes:
        # Every AWS::SQS::Queue property but these is a queue attribute of the same name.
        attributes = {
            key: _queue_attribute(value)
            for key, value in properties.items()
            if key not in ("QueueName", "Tags")
        }
        url = self.sqs.create_queue(
            QueueName=name, Attributes=cast("dict[QueueAttributeNameType, str]", attributes)
        )["QueueUrl"]
        return {"Ref": url, "QueueUrl": url, "QueueName": name, "Arn": self._queue_arn(url)}

    def _create_table(self, name: str, properties: Mapping[str, Any]) -> _Attributes:
        table = self.dynamodb.create_table(
            TableName=name,
            KeySchema=properties["KeySchema"],
            AttributeDefinitions=properties["AttributeDefinitions"],
            BillingMode=properties["BillingMode"],
            SSESpecification={"Enabled": properties.get("SSESpecification", {}).get("SSEEnabled", False)},
        )["TableDescription"]
        if "TimeToLiveSpecification" in properties:
            self.dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
            )
        if "PointInTimeRecoverySpecification" in properties:
            self.dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification=properties["PointInTimeRecoverySpecification"],
            )
        return {"Ref": name, "Arn": table["TableArn"]}

    def _create_bucket(self, name: str, properties: Mapping[str, Any]) -> _Attributes:
        if self.region == "us-east-1":
            self.s3.create_bucket(Bucket=name)
        else:
            location = cast("BucketLocationConstraintType", self.region)
            self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": location})
        if "PublicAccessBlockConfiguration" in properties:
            self.s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
            )
        if "BucketEncryption" in properties:
            # CloudFormation's rule key differs from the API's; the rest of the rule is the same.
            rules: list[Any] = [
                {_API_RULE_KEYS.get(key, key): value for key, value in rule.items()}
                for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            self.s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "OwnershipControls" in properties:
            self.s3.put_bucket_ownership_controls(
                Bucket=name, OwnershipControls=properties["OwnershipControls"]
            )
        return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}

    def _queue_arn(self, queue_url: str) -> str:
        answer = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return answer["Attributes"]["QueueArn"]


def _queue_attribute(value: Any) -> str:
    """A template value as SQS wants it: JSON for policies, lower-case booleans, strings for numbers."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


_CREATORS: dict[str, Callable[[_Deployment, str, Mapping[str, Any]], _Attributes]] = {
    "AWS::SQS::Queue": _Deployment._create_queue,
    "AWS::DynamoDB::Table": _Deployment._create_table,
    "AWS::S3::Bucket": _Deployment._create_bucket,
}
