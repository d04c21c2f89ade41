"""The web app of `snn serve` (Starlette): the page's files and a small JSON API over a
DigitReader. Routes only parse the request; every error is one 4xx JSON `{"error": "..."}`."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ImageError, SnnError, one_line, unexpected_message
from .service import DigitReader

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 10 * 1024 * 1024  # bytes in a request's body (an image file, form or JSON)
# The page loads nothing from elsewhere, and may not: every script, style and image is ours.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
HOW_TO_SEND = ("send the image file's bytes with an image/* Content-Type, a multipart form "
               "with the file in a field named 'file', or JSON {\"image\": \"<base64 or "
               "data: URL>\"}")


class ApiError(Exception):
    """A request the API refuses: its HTTP status and one line saying why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the request is larger than {limit // (1024 * 1024)} MB; "
                              "send a smaller image")


class LimitBody:
    """ASGI middleware: a request body over `limit` bytes is refused (413), by its
    Content-Length before it is read, and while it is read (a chunked body has none)."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            error = BodyTooLarge(self.limit) if length.isdigit() else ApiError(
                400, "the Content-Length header is not a number")
            response = JSONResponse({"error": str(error)}, error.status,
                                    headers={"Connection": "close"})
            return await response(scope, receive, send)
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def create_app(reader: DigitReader, max_body: int = MAX_BODY) -> Starlette:
    """The app serving the page and the API for one DigitReader."""

    async def page(request: Request):
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def info(request: Request):
        return JSONResponse(reader.info())

    async def predict(request: Request):
        steps = reader.check_steps(request.query_params.get("steps"))
        data, name = await _image_of(request)
        return JSONResponse(await reader.predict_async(data, name, steps))

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/info", info),
            Route("/api/predict", predict, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            SnnError: _snn_error,
            Exception: _internal_error,
        },
    )
    app.add_middleware(LimitBody, limit=max_body)
    app.state.reader = reader
    return app


async def _image_of(request: Request) -> tuple[bytes, str]:
    """(the image file's bytes, its name) from a request body in any of the three forms."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.startswith("image/"):
        data, name = await request.body(), "<upload>"
    elif kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "the form has no file in a field named 'file'")
            # the name goes into messages and the answer: one line, of a sane length
            data, name = await upload.read(), one_line(upload.filename or "<upload>")[:200]
    elif kind == "application/json":
        data, name = _json_image(await request.body()), "<upload>"
    else:
        given = f"Content-Type {kind}" if kind else "no Content-Type"
        raise ApiError(415, f"{given}: {HOW_TO_SEND}")
    if not data:
        raise ApiError(400, f"the image {name} is empty (0 bytes)")
    return data, name


def _json_image(body: bytes) -> bytes:
    """The image bytes of a JSON body {"image": "<base64>" or "data:image/...;base64,..."}."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({str(exc)[:80]})") from None
    image = value.get("image") if isinstance(value, dict) else None
    if not isinstance(image, str):
        raise ApiError(422, 'the JSON has no "image" string (base64 or a data: URL)')
    if image.startswith("data:"):
        header, _, image = image.partition(",")
        if not header.endswith(";base64"):
            raise ApiError(422, "the data: URL is not base64-encoded")
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, 'the "image" is not valid base64') from None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error(exc.status, str(exc))


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, str(exc.detail))


async def _snn_error(request: Request, exc: SnnError) -> JSONResponse:
    """The project's errors: an image that cannot be read or holds no digit is 422 (the
    request was well-formed, its image is not usable), a bad `steps` 400."""
    status = 422 if isinstance(exc, ImageError) else 400
    return _error(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return _error(500, unexpected_message(exc))

