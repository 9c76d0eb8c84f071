"""Parse labcloud's response XML with botocore's own response parsers.

Reads a JSON list of documents on stdin, each
  {"service": "ec2", "operation": "DescribeRegions", "status": 200, "body": "<...>"}
and prints a JSON list with what botocore parsed from each: the result for
status 200, the Error/ResponseMetadata dict otherwise. Timestamps are printed
in ISO 8601. Run by TestBotocoreParsesOutput (botocore_test.go); by hand:

  go test ./api/protocol/ -run TestBotocoreParsesOutput -v
"""
import json
import sys

import botocore.parsers
import botocore.session


def main():
    docs = json.load(sys.stdin)
    session = botocore.session.get_session()
    models = {}
    out = []
    for doc in docs:
        service = doc["service"]
        if service not in models:
            models[service] = session.get_service_model(service)
        model = models[service]
        op = model.operation_model(doc["operation"])
        parser = botocore.parsers.create_parser(model.metadata["protocol"])
        parsed = parser.parse(
            {"body": doc["body"].encode("utf-8"), "headers": {}, "status_code": doc["status"]},
            op.output_shape,
        )
        parsed.get("ResponseMetadata", {}).pop("HTTPHeaders", None)
        parsed.get("ResponseMetadata", {}).pop("HTTPStatusCode", None)
        out.append(parsed)
    json.dump(out, sys.stdout, default=lambda o: o.isoformat(), sort_keys=True)


if __name__ == "__main__":
    main()
