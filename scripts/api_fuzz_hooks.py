"""schemathesis hooks for scripts/api-fuzz: steer generated requests past the checks that
no random value passes, so that the fuzz reaches the hub's flows and not only its 400s.

- `client.id` (POS) and `partner.id` (scans) become the authenticated user, as the hub
  requires;
- half of the `tranId`s (bodies and the image path) are codes the hub really issued, half of
  the advices' `requestId`s are pays really sent, and half of the back office's ids are
  payments it listed (all learnt from earlier answers, shared through files in $API_FUZZ_DIR
  between the runs);
- when a `pay` names an issued code, the simulated wallet is asked (half the time) to scan it
  100ms later, so that held pays are approved and relayed, not only expired.
"""

import json
import os
import random
import threading
import time
import urllib.request

import schemathesis

STATE = os.environ["API_FUZZ_DIR"]
USER = os.environ.get("API_FUZZ_USER", "")
SIMULATOR = os.environ.get("API_FUZZ_SIMULATOR", "")
# Our own generator: Hypothesis resets the global one for every example, which would make
# every choice below the same.
CHOICE = random.Random(os.environ.get("API_FUZZ_SEED"))


def _scan_soon(tran_id):
    def scan():
        time.sleep(0.1)
        request = urllib.request.Request(
            SIMULATOR + "/simulator/scan",
            data=json.dumps({"tranId": tran_id}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(request, timeout=5).read()
        except OSError:
            pass  # the scan may be refused (an expired code, a repeat): that is the hub's call

    threading.Thread(target=scan, daemon=True).start()


def _known(name):
    try:
        with open(os.path.join(STATE, name)) as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _remember(name, value):
    if isinstance(value, str) and value and "\n" not in value:
        with open(os.path.join(STATE, name), "a") as f:
            f.write(value + "\n")


def _pick(name):
    known = _known(name)
    if known and CHOICE.random() < 0.5:
        return CHOICE.choice(known[-50:])
    return None


@schemathesis.hook
def map_body(context, body):
    if not isinstance(body, dict):
        return body
    path = context.operation.path
    if path.startswith("/qr/v1/scans"):
        if isinstance(body.get("partner"), dict):
            body["partner"]["id"] = USER
    elif path.startswith("/qr/v1/") and isinstance(body.get("client"), dict):
        body["client"]["id"] = USER
    if path.rstrip("/") == "/qr/v1/payments" and CHOICE.random() < 0.8:
        # The hub refuses a pay without amounts.requestAmount (the spec leaves it optional).
        amounts = body.get("amounts")
        if isinstance(amounts, dict) and not isinstance(amounts.get("requestAmount"), dict):
            amounts["requestAmount"] = {"amount": CHOICE.randint(1, 10**7), "currency": "710"}
    if "tranId" in body:
        tran_id = _pick("tran_ids")
        if tran_id:
            body["tranId"] = tran_id
            if path.rstrip("/") == "/qr/v1/payments" and SIMULATOR and CHOICE.random() < 0.5:
                _scan_soon(tran_id)
    if "requestId" in body:
        request_id = _pick("pay_ids")
        if request_id:
            body["requestId"] = request_id
    return body


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    if not path_parameters:
        return path_parameters
    path = context.operation.path
    if "tranId" in path_parameters:
        tran_id = _pick("tran_ids")
        if tran_id:
            path_parameters["tranId"] = tran_id
    if path == "/admin/v1/payments/{id}":
        payment = _pick("payment_ids")
        if payment:
            path_parameters["id"] = payment
    return path_parameters


@schemathesis.hook
def after_call(context, case, response):
    path = case.operation.path
    _remember("statuses", f"{response.status_code} {case.operation.method.upper()} {path}")
    try:
        answer = response.json()
    except (ValueError, json.JSONDecodeError):
        answer = None
    if isinstance(answer, dict) and "errorType" in answer:
        detail = json.dumps(answer.get("detailMessage"))[:160]
        _remember("refusals", f"{response.status_code} {path} {answer['errorType']} {answer.get('errorMessage')} {detail}")
    if path.startswith("/qr/v1/qrCodes") and response.status_code == 201 and isinstance(answer, dict):
        _remember("tran_ids", answer.get("tranId"))
    if path.startswith("/qr/v1/payments") and "confirmations" not in path and "reversals" not in path:
        if isinstance(case.body, dict):
            _remember("pay_ids", case.body.get("id"))
    if path == "/admin/v1/payments" and response.status_code == 200 and isinstance(answer, dict):
        for p in answer.get("payments", [])[:5]:
            _remember("payment_ids", p.get("id"))
