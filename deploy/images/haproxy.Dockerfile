# HAProxy from Debian, the load balancer in front of the hosts (compose.yaml
# mounts its haproxy.cfg).
ARG BASE=agenthost-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends haproxy \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
