"""Print SigV4 test vectors signed by botocore, for api/sigv4/clients_test.go.

    python3 api/sigv4/testdata/botocore_vectors.py   # botocore 1.43.11

The clock is pinned by replacing botocore.auth.get_current_datetime and the
invocation id by pinning uuid4, so reruns give the same signatures (only the
unsigned User-Agent may vary); nothing is sent over the network (the client
requests are captured at before-send).
"""
import datetime
import json
import uuid
from urllib.parse import urlsplit

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FIXED = datetime.datetime(2026, 1, 15, 10, 0, 0)
botocore.auth.get_current_datetime = lambda *a, **k: FIXED
uuid.uuid4 = lambda: uuid.UUID(int=0x1abc10d)

PERM = Credentials('AKIDLABCLOUDTEST0001', 'labcloudSecretKeyForBotocoreVectors0001')
TEMP = Credentials('ASIALABCLOUDTEST0002', 'labcloudTemporarySecretForVectors00002',
                   'FwoGZXIvYXdzEXAMPLEsessiontoken//+/labcloud==')


def raw(method, url, headers, body):
    """The request as it goes on the wire (urllib3 adds Host and Content-Length)."""
    u = urlsplit(url)
    target = (u.path or '/') + ('?' + u.query if u.query else '')
    body = body.decode() if isinstance(body, bytes) else (body or '')
    lines = [f'{method} {target} HTTP/1.1', f'Host: {u.netloc}']
    lines += [f'{k}: {v.decode() if isinstance(v, bytes) else v}' for k, v in headers.items()
              if k.lower() != 'content-length']
    if body:
        lines.append(f'Content-Length: {len(body.encode())}')
    return '\r\n'.join(lines) + '\r\n\r\n' + body


def emit(name, request, creds):
    q = lambda s: json.dumps(s)  # a JSON string is also a valid Go string literal
    print('\t{')
    print(f'\t\tname: {q(name)},')
    print(f'\t\traw:  {q(request)},')
    print(f'\t\tkey:  Key{{AccessKeyID: {q(creds.access_key)}, SecretAccessKey: {q(creds.secret_key)}, '
          f'SessionToken: {q(creds.token or "")}}},')
    print(f'\t\tnow:  {q(FIXED.strftime("%Y%m%dT%H%M%SZ"))},')
    print('\t},')


def capture(service, op, creds):
    """Run a real botocore client (the aws CLI's code path) and keep the request."""
    client = botocore.session.get_session().create_client(
        service, region_name='lab-1', endpoint_url='http://127.0.0.1:8787',
        aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token)
    got = {}

    def before_send(request, **_):
        got['request'] = request
        raise RuntimeError('captured')

    client.meta.events.register('before-send', before_send)
    try:
        getattr(client, op)()
    except RuntimeError:
        pass
    r = got['request']
    return raw(r.method, r.url, r.headers, r.body)


# SigV4Auth on an EC2 Query-protocol form POST.
req = AWSRequest(method='POST', url='https://ec2.lab-1.labcloud.test/',
                 data='Action=DescribeRegions&Version=2016-11-15',
                 headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8'})
botocore.auth.SigV4Auth(PERM, 'ec2', 'lab-1').add_auth(req)
p = req.prepare()
emit('botocore SigV4Auth ec2 DescribeRegions', raw(p.method, p.url, p.headers, p.body), PERM)

# SigV4QueryAuth presigned GET for STS.
req = AWSRequest(method='GET', url='https://sts.lab-1.labcloud.test/',
                 params={'Action': 'GetCallerIdentity', 'Version': '2011-06-15'})
botocore.auth.SigV4QueryAuth(PERM, 'sts', 'lab-1', expires=900).add_auth(req)
p = req.prepare()
emit('botocore SigV4QueryAuth sts presigned GetCallerIdentity', raw(p.method, p.url, p.headers, p.body), PERM)

# SigV4QueryAuth with temporary credentials (token in the query).
req = AWSRequest(method='GET', url='https://sts.lab-1.labcloud.test/',
                 params={'Action': 'GetCallerIdentity', 'Version': '2011-06-15'})
botocore.auth.SigV4QueryAuth(TEMP, 'sts', 'lab-1', expires=3600).add_auth(req)
p = req.prepare()
emit('botocore SigV4QueryAuth sts presigned with session token', raw(p.method, p.url, p.headers, p.body), TEMP)

# Real clients, as the aws CLI and boto3 send them.
emit('botocore client ec2 DescribeRegions', capture('ec2', 'describe_regions', PERM), PERM)
emit('botocore client iam GetUser with session token', capture('iam', 'get_user', TEMP), TEMP)
