# tier-router: one instance of the routing service. Build context: the repository root.
#   docker build -t tier-router:0.1.0 .
#   docker run -p 8700:8700 -e TIER_ROUTER_API_KEYS=... tier-router:0.1.0
# It listens on 0.0.0.0, so it refuses to start without TIER_ROUTER_API_KEYS (or an explicit
# TIER_ROUTER_ALLOW_UNAUTHENTICATED=1); on Kubernetes the keys come from a Secret.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user with a fixed uid, so that runAsNonRoot can check it.
RUN groupadd --system --gid 10001 tier-router \
    && useradd --system --uid 10001 --gid tier-router --home-dir /app --create-home \
        --shell /usr/sbin/nologin tier-router

WORKDIR /src
COPY pyproject.toml README.md ./
COPY classifier_service/ classifier_service/
COPY training/tier_router_training/ training/tier_router_training/
RUN pip install . && rm -rf /src

WORKDIR /app
# The feedback log and the outcomes folder go to volumes (on Kubernetes: an emptyDir, and one
# ReadWriteMany claim shared by every pod); the rest can be read-only.
RUN mkdir -p /var/lib/tier-router/outcomes && chown -R tier-router:tier-router /var/lib/tier-router
ENV TIER_ROUTER_FEEDBACK_LOG=/var/lib/tier-router/feedback.jsonl \
    TIER_ROUTER_OUTCOMES_DIR=/var/lib/tier-router/outcomes
USER 10001:10001

EXPOSE 8700
CMD ["tier-router", "serve", "--host", "0.0.0.0", "--port", "8700"]
