import asyncio
import logging
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

VERSION_FILE = settings.BASE_DIR / "VERSION"
LAYER_TIMEOUT = 3  # seconds for the channel layer round trip


def app_version() -> str:
    """The VERSION file at the app root, read on each call (a deploy may replace it)."""
    try:
        return VERSION_FILE.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@require_safe
def index(request):
    body = f"chat VERSION={app_version()} release={settings.RELEASE}\n"
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone()[0] != 1:
            raise RuntimeError("SELECT 1 returned something else")


def _check_cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    value = uuid.uuid4().hex
    cache.set(key, value, timeout=30)
    if cache.get(key) != value:
        raise RuntimeError("value written to the cache did not come back")
    cache.delete(key)


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    value = uuid.uuid4().hex
    async with asyncio.timeout(LAYER_TIMEOUT):
        channel = await layer.new_channel("health.")
        await layer.send(channel, {"type": "health.ping", "value": value})
        message = await layer.receive(channel)
    if message.get("value") != value:
        raise RuntimeError("message sent through the channel layer did not come back")


@never_cache
@require_safe
async def health(request):
    """200 when the database, the cache and the channel layer all answer, else 503 naming
    what failed."""
    result = {"status": "ok"}
    failing = []
    for part, check in (("database", sync_to_async(_check_database)),
                        ("cache", sync_to_async(_check_cache)),
                        ("channel_layer", _check_channel_layer)):
        try:
            await check()
        except Exception as exc:  # any failure of a dependency is a failed check
            message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            log.error("health: %s check failed: %s", part, message)
            result[part] = f"error: {message}"
            failing.append(part)
        else:
            result[part] = "ok"
    result["version"] = app_version()
    result["release"] = settings.RELEASE
    if failing:
        result["status"] = "error"
        result["failing"] = failing
    return JsonResponse(result, status=503 if failing else 200)
