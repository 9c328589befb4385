"""Resources of template.yaml after the SAM transform (what CloudFormation
creates; a stack holds at most 500): fails above the budget of 330, and
prints the count, the count by type, and how many more API routes fit.

Run with aws-sam-cli's Python (it brings samtranslator):
    .venv-sam/bin/python tests/aws/template_resources.py [template.yaml]
"""

import collections
import sys

import boto3

import yaml
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

BUDGET = 330
STACK_LIMIT = 500


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !GetAtt, ...)."""


def _tag(loader, tag_suffix, node):
    name = "Fn::" + tag_suffix if tag_suffix not in ("Ref", "Condition") else tag_suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _tag)


class NoManagedPolicies:
    """The template names no managed policies by name; nothing to look up."""

    def load(self):
        return {}


def translate(path):
    with open(path) as f:
        template = yaml.load(f, Loader=CfnLoader)
    # As `sam package` leaves it: local code uploaded to S3.
    for r in template.get("Resources", {}).values():
        if r.get("Type") == "AWS::Serverless::Function":
            r.setdefault("Properties", {})["CodeUri"] = "s3://bucket/hub-lambda.zip"
    parameters = {
        name: p.get("Default", "x" * 32) for name, p in template.get("Parameters", {}).items()
    }
    parameters.update({"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
                       "AWS::Partition": "aws", "AWS::StackName": "hub", "AWS::URLSuffix": "amazonaws.com"})
    translator = Translator(NoManagedPolicies(), Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    return template, translator.translate(template, parameter_values=parameters)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    try:
        source, out = translate(path)
    except InvalidDocumentException as e:
        print(f"{path}: the SAM transform failed: {str(e)[:2000]}")
        return 1
    resources = out["Resources"]
    by_type = collections.Counter(r["Type"] for r in resources.values())
    routes = sum(
        1 for r in source["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function" and "Api" in r["Properties"].get("Events", {})
    )
    per_route = by_type["AWS::Lambda::Function"] and (
        by_type["AWS::Lambda::Function"] + by_type["AWS::Lambda::Permission"]) / by_type["AWS::Lambda::Function"]
    total = len(resources)
    for t, n in sorted(by_type.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4} {t}")
    more = int((STACK_LIMIT - total) // 2)
    print(f"{path}: {total} resources after the SAM transform ({routes} API routes; "
          f"{per_route:.1f} per function); budget {BUDGET}; room for {more} more routes "
          f"in one stack of {STACK_LIMIT} (2 resources each: the function and its API permission)")
    if total > BUDGET:
        print(f"FAIL: {total} > {BUDGET}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
