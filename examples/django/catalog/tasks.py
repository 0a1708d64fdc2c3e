"""Background jobs of the example shop."""

import time

from celery import shared_task

from .models import Item


@shared_task
def create_item_later(name: str, seconds: float) -> int:
    """Wait ``seconds`` (a long job), then create an item; proves a job survives a deploy."""
    time.sleep(seconds)
    return Item.objects.create(name=name).pk
