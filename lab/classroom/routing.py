from django.urls import re_path

from .consumers import ClassConsumer

websocket_urlpatterns = [
    re_path(r"^ws/classroom/cohorts/(?P<cohort_id>[0-9]{1,12})/$", ClassConsumer.as_asgi()),
]
