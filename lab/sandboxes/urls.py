from django.urls import path

from . import api, gateway_api, mesh_api

urlpatterns = [
    path("sandboxes/", api.SandboxListCreateApi.as_view(), name="api-sandboxes"),
    path("sandboxes/<str:sandbox_id>/", api.SandboxDetailApi.as_view(), name="api-sandbox"),
    path("sandboxes/<str:sandbox_id>/runs/", api.RunListCreateApi.as_view(), name="api-runs"),
    path("sandboxes/<str:sandbox_id>/faults/", api.FaultApi.as_view(), name="api-faults"),
    path("sandboxes/<str:sandbox_id>/mesh/", mesh_api.MeshApi.as_view(), name="api-mesh"),
    path(
        "sandboxes/<str:sandbox_id>/mesh/policy/",
        mesh_api.MeshPolicyApi.as_view(),
        name="api-mesh-policy",
    ),
    path(
        "sandboxes/<str:sandbox_id>/gateway/", gateway_api.GatewayApi.as_view(), name="api-gateway"
    ),
    path(
        "sandboxes/<str:sandbox_id>/gateway/policy/",
        gateway_api.GatewayPolicyApi.as_view(),
        name="api-gateway-policy",
    ),
    path("warm-pools/", api.WarmPoolListCreateApi.as_view(), name="api-warm-pools"),
    path("warm-pools/<int:pool_id>/", api.WarmPoolDetailApi.as_view(), name="api-warm-pool"),
    path("runs/<str:run_id>/", api.RunDetailApi.as_view(), name="api-run"),
    path("runs/<str:run_id>/spans/", api.RunSpansApi.as_view(), name="api-run-spans"),
    path("runs/<str:run_id>/trace/", api.RunTraceExportApi.as_view(), name="api-run-trace"),
]
