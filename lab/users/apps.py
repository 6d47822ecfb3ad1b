from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "lab.users"
    # The database tables were created under the app's first name; the label keeps them.
    label = "accounts"
