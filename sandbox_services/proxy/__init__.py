"""HAProxy as the lab's data plane: certificates, processes, configuration, logs, runtime state.

Shared plumbing for every lesson that puts a proxy between services (the
service mesh's sidecars, the API gateway's edge). It never imports a lesson:
a lesson renders its own configuration from its own policy and hands it here.
"""
