# A demo VNC desktop (TigerVNC, an xterm) for docker-compose.yml: the target demo-desk of deploy/deskgate.yaml.
# Its VNC password is the first line of secrets/demo-desk.pass, the file the gateway reads too.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        tigervnc-standalone-server tigervnc-tools xterm openbox \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10002 operator
USER 10002:10002
WORKDIR /home/operator
EXPOSE 5901
CMD ["sh", "-c", "head -n1 /run/secrets/demo-desk.pass | vncpasswd -f > /tmp/vncpasswd && Xvnc :1 -rfbport 5901 -rfbauth /tmp/vncpasswd -geometry 1280x800 -SecurityTypes VncAuth & sleep 1; DISPLAY=:1 openbox & DISPLAY=:1 exec xterm"]
