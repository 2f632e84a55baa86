"""11. boto3 checksum modes, explicit flexible checksums, and metadata
round-trips.

Modes:
  default          botocore defaults (request_checksum_calculation=when_supported).
                   Over plain http botocore puts x-amz-checksum-crc32 in a header.
  default-trailer  the same, but the checksum goes in an aws-chunked trailer with
                   x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER, which
                   is what botocore sends by default over https.
  when_required    request_checksum_calculation / response_checksum_validation
                   = when_required: no flexible checksum at all.
Each test also checks that botocore really sent what the mode claims, so a
botocore upgrade cannot silently turn a mode into another one.
"""

import os

import pytest

from compat_helpers import KiB, MiB, checksum_b64, force_trailer_checksums, record_sent_headers

MODES = ["default", "default-trailer", "when_required"]
ALGORITHMS = ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]


def _client(server, mode):
    if mode == "when_required":
        c = server.client(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
    else:
        c = server.client()
    if mode == "default-trailer":
        force_trailer_checksums(c)
    return c


def _assert_wire_format(headers, mode, algorithm="crc32"):
    name = f"x-amz-checksum-{algorithm.lower()}"
    if mode == "default":
        assert name in headers, headers
        assert headers.get("x-amz-content-sha256", "").lower() not in ("", "streaming-unsigned-payload-trailer")
    elif mode == "default-trailer":
        assert headers.get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers
        assert headers.get("x-amz-trailer") == name, headers
        assert "aws-chunked" in headers.get("content-encoding", ""), headers
        assert name not in headers, headers
    else:
        assert not any(h.startswith("x-amz-checksum-") for h in headers), headers


@pytest.mark.parametrize("size", [1 * KiB, 10 * MiB], ids=["1KiB", "10MiB"])
@pytest.mark.parametrize("mode", MODES)
def test_put_get_roundtrip_in_checksum_mode(server, bucket, mode, size):
    s3 = _client(server, mode)
    sent = record_sent_headers(s3, "PutObject")
    data = os.urandom(size)
    key = f"cksum/{mode}-{size}.bin"

    s3.put_object(Bucket=bucket, Key=key, Body=data)
    _assert_wire_format(sent[-1], mode)

    obj = s3.get_object(Bucket=bucket, Key=key)
    body = obj["Body"].read()  # in default modes botocore validates any returned checksum
    assert obj["ContentLength"] == size
    assert body == data


# Past 4 MiB the write path leaves the SHA-1 to the background job unless the client names
# SHA-1 (StageOptions::defer_sha1): both sizes must answer every algorithm at once.
@pytest.mark.parametrize("size", [256 * KiB + 7, 5 * MiB + 7], ids=["256KiB", "5MiB"])
@pytest.mark.parametrize("mode", ["default", "default-trailer"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_explicit_checksum_algorithm_is_stored_and_returned(server, bucket, mode, algorithm, size):
    s3 = _client(server, mode)
    sent = record_sent_headers(s3, "PutObject")
    data = os.urandom(size)
    key = f"cksum/explicit-{algorithm}-{mode}-{size}.bin"
    expected = checksum_b64(algorithm, data)
    field = f"Checksum{algorithm}"

    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    _assert_wire_format(sent[-1], mode, algorithm)
    if mode == "default":
        assert sent[-1][f"x-amz-checksum-{algorithm.lower()}"] == expected
    assert put.get(field) == expected, put

    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get(field) == expected, {k: v for k, v in head.items() if k.startswith("Checksum")}

    obj = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert obj["Body"].read() == data  # botocore validates the returned checksum
    assert obj.get(field) == expected


@pytest.mark.parametrize("mode", MODES)
def test_metadata_and_content_headers_roundtrip(server, bucket, mode):
    s3 = _client(server, mode)
    key = f"meta/{mode}.bin"
    headers = dict(
        ContentType="application/x-chuan-test",
        ContentDisposition='attachment; filename="report.bin"',
        CacheControl="max-age=60, must-revalidate",
        ContentEncoding="gzip",
        ContentLanguage="de-CH",
    )
    s3.put_object(Bucket=bucket, Key=key, Body=os.urandom(3000), Metadata={"a": "b", "colour": "blue"}, **headers)

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {"a": "b", "colour": "blue"}
    for field, value in headers.items():
        assert head.get(field) == value, f"{field}: {head.get(field)!r} != {value!r}"
    assert head["ContentLength"] == 3000
