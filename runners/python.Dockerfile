# The python runner: CPython 3.11 (Debian bookworm), and the CodeBox supervisor (codebox-supervisor).
# Built by scripts/images.sh (context: runners/). Production can start from an official
# image instead of the debootstrapped base: --build-arg BASE=debian:bookworm-slim
ARG BASE=codebox-base:bookworm
FROM ${BASE}

COPY codebox-apt /usr/local/sbin/codebox-apt
RUN sh /usr/local/sbin/codebox-apt python3 \
 && rm /usr/local/sbin/codebox-apt

COPY codebox-supervisor /usr/local/bin/codebox-supervisor
COPY codebox-python /usr/local/lib/codebox/codebox-python
# /work is a tmpfs in every sandbox, and a tmpfs takes this directory's mode.
RUN chmod 0755 /usr/local/bin/codebox-supervisor && chmod 0644 /usr/local/lib/codebox/codebox-python \
 && mkdir -p /work && chmod 1777 /work

# The supervisor protocol label (codebox.protocol) comes from the binary (scripts/images.sh).
LABEL codebox.language="python"
WORKDIR /work
USER 65534:65534
CMD ["/usr/local/bin/codebox-supervisor", "python"]
