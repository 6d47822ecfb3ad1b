from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("lessons/<slug:slug>/", views.lesson_detail, name="lesson"),
    path("lessons/<slug:slug>/steps/<str:step_id>/done/", views.step_done, name="step-done"),
    path(
        "lessons/<slug:slug>/checkpoints/<str:checkpoint_id>/",
        views.checkpoint_answer,
        name="checkpoint-answer",
    ),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/guest/", views.guest_start, name="guest"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=False),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The old polled class page's address: the live class view starts at the cohorts.
    path(
        "instructor/",
        RedirectView.as_view(pattern_name="classroom-cohorts", permanent=False),
        name="instructor",
    ),
    path(
        "instructor/sandboxes/<str:sandbox_id>/",
        views.instructor_sandbox,
        name="instructor-sandbox",
    ),
]
