#!/usr/bin/env python3
"""Time CompleteMultipartUpload of many parts (issue 15: 1,000 parts in < 50 ms).

usage: complete.py ENDPOINT ACCESS_KEY SECRET_KEY [PARTS=1000] [ROUNDS=3]
Against a running server (the keys' tenant needs no rate limit: start it with
CHUAN_TENANT_REQUESTS_PER_SEC=0). Makes bucket `completebench`, one 5 MiB source object,
then per round a multipart upload whose PARTS parts are UploadPartCopy of that object, and
times the CompleteMultipartUpload call (client side, boto3 request building included); checks
the object's length; prints each round and the median, then deletes what it made.
"""
import os
import statistics
import sys
import time

import boto3


def main() -> None:
    endpoint, ak, sk = sys.argv[1:4]
    parts_n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                      region_name="us-east-1")
    bucket, part = "completebench", 5 << 20
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="src", Body=os.urandom(part))
    times = []
    for r in range(rounds):
        key = f"big{r}"
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        parts = []
        for n in range(1, parts_n + 1):
            got = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=up, PartNumber=n,
                                      CopySource={"Bucket": bucket, "Key": "src"})
            parts.append({"PartNumber": n, "ETag": got["CopyPartResult"]["ETag"]})
        t = time.perf_counter()
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={"Parts": parts})
        times.append((time.perf_counter() - t) * 1000)
        size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        assert size == parts_n * part, size
        print(f"round {r + 1}: CompleteMultipartUpload of {parts_n} parts in {times[-1]:.1f} ms")
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key="src")
    s3.delete_bucket(Bucket=bucket)
    print(f"median {statistics.median(times):.1f} ms over {rounds} rounds")
    print(f"RESULT {os.environ.get('TARGET_NAME', 'chuan'):<12} {f'complete_{parts_n}_parts_ms':<26} "
          f"{statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
