from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("lab.curriculum.urls")),
    path("api/", include("lab.sandboxes.urls")),
    path("", include("lab.classroom.urls")),
    path("", include("lab.web.urls")),
]
