"""A small fake of the providers' HTTP APIs for billing's tests, speaking their documented wire
format: Razorpay `POST /v1/orders` (JSON, HTTP Basic key_id:key_secret) and Stripe
`POST /v1/checkout/sessions` (form-encoded with bracketed keys, `Authorization: Bearer sk_…`,
`Idempotency-Key`). It checks what the official SDKs send and records every request; and the
signers of the providers' real webhook schemes (Razorpay: hex HMAC-SHA256 of the raw body;
Stripe: `t=<ts>,v1=<hex HMAC-SHA256 of "<t>.<body>">`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

RAZORPAY_KEY_ID = "rzp_test_zenops"
RAZORPAY_KEY_SECRET = "rzp_secret_zenops"
RAZORPAY_WEBHOOK_SECRET = "rzp_whsec_zenops"
STRIPE_SECRET_KEY = "sk_test_zenops"
STRIPE_WEBHOOK_SECRET = "whsec_zenops"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: dict | None = None
    form: dict[str, str] = field(default_factory=dict)


class FakeProviders:
    """`with FakeProviders() as fake:` — listening on 127.0.0.1:<port> (fake.base)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.sessions_by_key: dict[str, dict] = {}
        self.fail_next = 0  # answer the next N requests with a 500
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(rec)
                if fake.fail_next:
                    fake.fail_next -= 1
                    self._send(
                        500,
                        {
                            "error": {
                                "code": "SERVER_ERROR",
                                "description": "try later",
                                "type": "api_error",
                                "message": "try later",
                            }
                        },
                    )
                    return
                if self.path == "/v1/orders":
                    self._razorpay_order(rec)
                elif self.path == "/v1/checkout/sessions":
                    self._stripe_session(rec)
                else:
                    self._send(404, {"error": {"code": "BAD_REQUEST_ERROR", "description": "no such route"}})

            def _razorpay_order(self, rec: Recorded) -> None:
                expected = "Basic " + base64.b64encode(f"{RAZORPAY_KEY_ID}:{RAZORPAY_KEY_SECRET}".encode()).decode()
                if rec.headers.get("authorization") != expected:
                    self._send(401, {"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}})
                    return
                data = json.loads(rec.body)
                rec.json = data
                amount = data.get("amount")
                if not isinstance(amount, int) or amount < 100 or data.get("currency") != "INR":
                    self._send(
                        400,
                        {
                            "error": {
                                "code": "BAD_REQUEST_ERROR",
                                "description": "amount (>= 100 paise) and currency INR required",
                            }
                        },
                    )
                    return
                self._send(
                    200,
                    {
                        "id": f"order_{uuid.uuid4().hex[:14]}",
                        "entity": "order",
                        "amount": amount,
                        "amount_paid": 0,
                        "amount_due": amount,
                        "currency": "INR",
                        "receipt": data.get("receipt"),
                        "status": "created",
                        "attempts": 0,
                        "notes": data.get("notes") or {},
                        "created_at": int(time.time()),
                    },
                )

            def _stripe_session(self, rec: Recorded) -> None:
                if rec.headers.get("authorization") != f"Bearer {STRIPE_SECRET_KEY}":
                    self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
                    return
                if not rec.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    self._send(400, {"error": {"type": "invalid_request_error", "message": "form body expected"}})
                    return
                rec.form = dict(parse_qsl(rec.body.decode()))
                form = rec.form
                if form.get("mode") != "payment" or "line_items[0][price_data][unit_amount]" not in form:
                    self._send(400, {"error": {"type": "invalid_request_error", "message": "bad session"}})
                    return
                key = rec.headers.get("idempotency-key", "")
                if key and key in fake.sessions_by_key:
                    self._send(200, fake.sessions_by_key[key])
                    return
                session_id = f"cs_test_{uuid.uuid4().hex}"
                metadata = {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")}
                session = {
                    "id": session_id,
                    "object": "checkout.session",
                    "mode": "payment",
                    "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                    "payment_intent": None,
                    "payment_status": "unpaid",
                    "status": "open",
                    "currency": "inr",
                    "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
                    "client_reference_id": form.get("client_reference_id"),
                    "metadata": metadata,
                }
                if key:
                    fake.sessions_by_key[key] = session
                self._send(200, session)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def settings(self, **overrides) -> dict:
        """Billing settings pointing both SDKs at this fake, every secret set."""
        out = {
            "razorpay_key_id": RAZORPAY_KEY_ID,
            "razorpay_key_secret": RAZORPAY_KEY_SECRET,
            "razorpay_webhook_secret": RAZORPAY_WEBHOOK_SECRET,
            "razorpay_api_base": self.base,
            "stripe_secret_key": STRIPE_SECRET_KEY,
            "stripe_webhook_secret": STRIPE_WEBHOOK_SECRET,
            "stripe_api_base": self.base,
            "payment_sweep_interval": 3600.0,
        }
        out.update(overrides)
        return out


# -- signed webhooks ---------------------------------------------------------------------------


def razorpay_headers(body: bytes, event_id: str, secret: str = RAZORPAY_WEBHOOK_SECRET) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-razorpay-signature": signature, "x-razorpay-event-id": event_id, "content-type": "application/json"}


def stripe_headers(
    body: bytes, secret: str = STRIPE_WEBHOOK_SECRET, *, timestamp: int | None = None, extra_v1: tuple[str, ...] = ()
) -> dict[str, str]:
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    parts = [f"t={t}", *(f"v1={v}" for v in extra_v1), f"v1={signature}"]
    return {"stripe-signature": ",".join(parts), "content-type": "application/json"}


def razorpay_payment(
    kind: str,
    *,
    payment_id: str,
    order_id: str,
    amount: int,
    notes: dict | None = None,
    status: str = "captured",
    extra: dict | None = None,
) -> bytes:
    payment = {
        "id": payment_id,
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "order_id": order_id,
        "method": "upi",
        "notes": notes or {},
        "captured": status == "captured",
    }
    payload: dict = {"payment": {"entity": payment}}
    if kind == "order.paid":
        payload["order"] = {
            "entity": {
                "id": order_id,
                "entity": "order",
                "amount": amount,
                "amount_paid": amount,
                "status": "paid",
                "notes": notes or {},
            }
        }
    payload.update(extra or {})
    return json.dumps(
        {
            "entity": "event",
            "account_id": "acc_test",
            "event": kind,
            "contains": list(payload),
            "payload": payload,
            "created_at": int(time.time()),
        }
    ).encode()


def stripe_event(kind: str, obj: dict, *, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": kind,
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": obj},
        }
    ).encode()
