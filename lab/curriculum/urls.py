from django.urls import path

from . import api

urlpatterns = [
    path("lessons/", api.LessonListApi.as_view(), name="api-lessons"),
    path("lessons/<slug:slug>/", api.LessonDetailApi.as_view(), name="api-lesson"),
    path("lessons/<slug:slug>/progress/", api.ProgressApi.as_view(), name="api-progress"),
]
