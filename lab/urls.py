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

# Unknown URLs under /api/ get the API's JSON error, not the site's HTML page.
handler404 = "lab.api_errors.not_found"
handler500 = "lab.api_errors.server_error"
