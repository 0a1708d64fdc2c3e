import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from .models import Item

log = logging.getLogger(__name__)

VERSION_FILE = settings.BASE_DIR / "VERSION"


def app_version() -> str:
    """The VERSION file at the app root, read on each call (a deploy may replace it)."""
    try:
        return VERSION_FILE.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@require_safe
def index(request):
    body = f"shop VERSION={app_version()} release={settings.RELEASE}\n"
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


@never_cache
@require_safe
def health(request):
    """200 when the database and the cache both answer, else 503 naming what failed."""
    result = {"status": "ok"}
    failing = []
    for part, check in (("database", _check_database), ("cache", _check_cache)):
        try:
            check()
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


@csrf_exempt  # a demo JSON API; no cookies or sessions are involved
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def items(request):
    """GET: the newest 100 items. POST (multipart): ``name`` and an optional file ``image``."""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        max_length = Item._meta.get_field("name").max_length
        if not name:
            return JsonResponse({"error": "name is required"}, status=400)
        if len(name) > max_length:
            return JsonResponse({"error": f"name is longer than {max_length}"}, status=400)
        item = Item(name=name)
        upload = request.FILES.get("image")
        if upload is not None:
            item.image.save(upload.name, upload, save=False)
        item.save()
        log.info("created item %s (image %s)", item.id, item.image.name or "none")
        return JsonResponse(item.as_json(), status=201)
    return JsonResponse({"items": [item.as_json() for item in Item.objects.all()[:100]]})
