"""What the DEBUG error page may show: no credentials from settings.

Django's default filter hides settings whose names look secret (KEY, TOKEN,
PASS...), but AMQP_URL, REDIS_URL, CELERY_BROKER_URL and the channel layer's
hosts carry passwords inside URLs. This filter hides every setting whose name
says URL or PASSWORD, and the password part of any URL-looking value anywhere.
"""

import re

from django.views.debug import SafeExceptionReporterFilter

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@", re.I)


class CredentialHidingFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URLS?$|DSN", flags=re.IGNORECASE
    )

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            return _URL_CREDENTIALS.sub(rf"\g<scheme>{self.cleansed_substitute}@", value)
        return value
