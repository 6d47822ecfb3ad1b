from django.urls import path

from . import views

urlpatterns = [
    path("class/", views.cohorts, name="classroom-cohorts"),
    path("class/join/", views.join, name="classroom-join"),
    path("class/cohorts/<int:cohort_id>/", views.cohort_detail, name="classroom-cohort"),
    path(
        "class/cohorts/<int:cohort_id>/progress.csv",
        views.progress_csv,
        name="classroom-progress-csv",
    ),
    path(
        "class/cohorts/<int:cohort_id>/scenarios/",
        views.scenario_push,
        name="classroom-scenarios",
    ),
    path(
        "class/cohorts/<int:cohort_id>/scenarios/<int:scenario_id>/reset/",
        views.scenario_reset,
        name="classroom-scenario-reset",
    ),
    path(
        "class/predictions/<slug:slug>/<str:checkpoint_id>/",
        views.prediction,
        name="classroom-prediction",
    ),
]
