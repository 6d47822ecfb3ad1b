# The lab's image: web (daphne), worker, runs and beat all run from it; see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# HAProxy: the service-mesh lesson's sidecars (and the gateway's edge proxy).
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, in a layer of their own: it is rebuilt only when
# pyproject.toml changes. With no package sources copied yet, `pip install .`
# installs the dependencies and an empty distribution, replaced below.
COPY pyproject.toml ./
RUN pip install . && pip uninstall -y microservices-communication-lab

COPY . .
# Editable, so that lab/ and sandbox_services/ are imported from /app itself,
# whichever directory a command starts in; then the gRPC code and static files.
RUN pip install --no-deps -e . \
    && python -m sandbox_services.codegen \
    && DJANGO_DEBUG=0 python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --create-home --uid 1000 lab \
    && mkdir -p var \
    && chown -R lab:lab var

USER lab
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "lab.asgi:application"]
