#!/usr/bin/env python3
"""S3 chores for the benchmark, run in their own short-lived process so the benchmark process
stays small (a child's peak RSS, as wait4 reports it, starts from its parent's size at fork).

    s3util.py ENDPOINT create-bucket BUCKET | size BUCKET PREFIX | purge BUCKET PREFIX
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

CREDS = {"access_key_id": "bench", "secret_access_key": "bench-secret"}


def main(argv):
    endpoint, action, bucket = argv[:3]
    if action == "create-bucket":
        import boto3
        c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                         aws_access_key_id=CREDS["access_key_id"], aws_secret_access_key=CREDS["secret_access_key"])
        c.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        return
    from vaults.store.s3 import S3Backend
    b = S3Backend(bucket, argv[3], endpoint_url=endpoint, **CREDS)
    if action == "size":
        print(sum(i.size for i in b.list_info("")))
    elif action == "purge":
        for name in b.list(""):
            b.delete(name, bypass_governance=True)
    else:
        raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main(sys.argv[1:])
