"""Lesson 02 (control plane): a refused upload fixed from its `detail`; status codes predicted, then seen."""

from __future__ import annotations

from typing import Any

import httpx

from lab.exercises import Verdict, checker, hint, is_int, kind, not_an_int, passed, untouched

UNKNOWN_VOD = "vod-000000000000"
REQUESTS = {  # what each prediction is about -> how to make that request
    "metadata of an unknown VOD id": ("GET", f"/vod/{UNKNOWN_VOD}/metadata", None, True),
    "start a stream without the API key": ("POST", "/streams/start", {"title": "no key"}, False),
    "end a stream that does not exist": ("POST", "/streams/end", {"stream_id": "live-0000000000"}, True),
}


@checker
def upload_fixed(response: Any) -> Verdict:
    from lab.apiclient import detail

    if untouched(response):
        return hint("run the upload cell first: `attempt` is the API's answer")
    if not isinstance(response, httpx.Response):
        return hint(f"pass the API's answer (an httpx.Response, `attempt`), not {kind(response)}")
    request = response.request
    if (request.method, request.url.path) != ("POST", "/vod/upload"):
        return hint(f"that is the answer to {request.method} {request.url.path}: pass the answer to your "
                    "POST /vod/upload (`attempt`)")
    if response.status_code == 202:
        stream_id = response.json().get("stream_id")
        from lab.apiclient import client

        with client(30) as api:
            known = api.get(f"/vod/{stream_id}/metadata")
        if known.status_code != 200:
            return hint(f"the API answered 202 but knows no {stream_id} ({known.status_code}): tell the instructor")
        return passed(f"202 Accepted: {stream_id} is {known.json().get('status')}, on its way through the ladder")
    if response.status_code in (401, 403):
        return hint(f"{response.status_code}: {detail(response)}. Use `api` (it sends the key), not a bare httpx")
    return hint(f"refused with {response.status_code}: {detail(response)!r}. The part before the colon names the "
                "field to fix; compare with the upload above, which worked")


def actual_codes(api: httpx.Client) -> dict[str, int]:
    from lab.config import settings

    codes = {}
    for what, (method, path, body, with_key) in REQUESTS.items():
        client = api if with_key else httpx.Client(base_url=settings.api_base, timeout=30)
        codes[what] = client.request(method, path, json=body).status_code
    return codes


@checker
def predicted_codes(predictions: Any, api: httpx.Client) -> Verdict:
    if not isinstance(predictions, dict) or set(predictions) != set(REQUESTS):
        return hint("keep PREDICTIONS as given: a dict with one status code per request, under the same three "
                    "keys")
    if any(untouched(v) for v in predictions.values()):
        return hint("fill in PREDICTIONS: the HTTP status code you expect for each request (an int such as "
                    "200, 202, 401, 403, 404, 409 or 422), then run this cell to see the real ones")
    for what, said in predictions.items():
        if not is_int(said):
            return not_an_int(f"the prediction for {what!r}", said, "404")
    actual = actual_codes(api)
    wrong = {what: (predictions[what], code) for what, code in actual.items() if predictions[what] != code}
    if wrong:
        return hint("; ".join(f"{what}: you said {said}, the API answered {code}" for what, (said, code)
                              in wrong.items()) + ". Read each answer's `detail`: why that code?")
    return passed("every prediction right: " + ", ".join(f"{what} → {code}" for what, code in actual.items()))
