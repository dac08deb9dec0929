# The Agent Host server as a container image, from the same offline Debian
# base as the sandbox image (deploy/build-images.sh makes both). The
# context holds the release binary, the built plugins and the chat page.
#
# The host starts sandboxes through the Docker engine it is given (the
# engine's socket, mounted by compose.yaml), publishes their ports on the
# engine's 127.0.0.1 and installs their egress rules with iptables: so it
# runs in the engine's network namespace (network_mode: host) with
# NET_ADMIN. Sandboxes never see the socket.
ARG BASE=agenthost-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends ca-certificates iptables ffmpeg curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY agenthost /usr/local/bin/agenthost
COPY plugins/ /opt/agenthost/plugins/
COPY web/ /opt/agenthost/web/
COPY host-entrypoint.sh /usr/local/bin/agenthost-entrypoint
ENV AGENTHOST_DATA_DIR=/var/lib/agenthost AGENTHOST_WEB_DIR=/opt/agenthost/web \
    AGENTHOST_LISTEN=0.0.0.0:8080
VOLUME /var/lib/agenthost
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS "http://127.0.0.1:${AGENTHOST_LISTEN##*:}/healthz" || exit 1
ENTRYPOINT ["/usr/local/bin/agenthost-entrypoint"]
CMD ["serve"]
