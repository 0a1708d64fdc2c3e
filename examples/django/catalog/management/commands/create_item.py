"""``python manage.py create_item NAME``: add one item (a scheduled job's work in the tests)."""

from django.core.management.base import BaseCommand

from catalog.models import Item


class Command(BaseCommand):
    help = "Create an item named NAME and print its id."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **options):
        item = Item.objects.create(name=options["name"])
        self.stdout.write(f"created item {item.pk} {item.name}")
