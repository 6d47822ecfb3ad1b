"""Create or update a lab user and print its API token."""

from django.core.management.base import BaseCommand, CommandError

from lab.users.services import labuser_upsert


class Command(BaseCommand):
    help = "Create a lab user (or update one that exists) and print its API token."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--role", choices=["learner", "instructor"], default="learner")
        parser.add_argument("--password", help="Also set a password for signing in to the site.")

    def handle(self, *args, name: str, role: str, password: str | None, **options):
        try:
            _, token = labuser_upsert(username=name, role=role, password=password)
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(token)
