# The c runner: gcc 12, C17 (Debian bookworm), and the CodeBox supervisor (codebox-supervisor).
# Built by scripts/images.sh (context: runners/). Production can start from an official
# image instead of the debootstrapped base: --build-arg BASE=debian:bookworm-slim
ARG BASE=codebox-base:bookworm
FROM ${BASE}

COPY codebox-apt /usr/local/sbin/codebox-apt
RUN sh /usr/local/sbin/codebox-apt gcc libc6-dev \
 && rm /usr/local/sbin/codebox-apt

COPY codebox-supervisor /usr/local/bin/codebox-supervisor
# /work is a tmpfs in every sandbox, and a tmpfs takes this directory's mode.
RUN chmod 0755 /usr/local/bin/codebox-supervisor && mkdir -p /work && chmod 1777 /work

# The supervisor protocol label (codebox.protocol) comes from the binary (scripts/images.sh).
LABEL codebox.language="c"
WORKDIR /work
USER 65534:65534
CMD ["/usr/local/bin/codebox-supervisor", "c"]
