#!/bin/sh
# openssl s_server as a keyless edge, the key given directly by URI (OSSL_STORE) or as a stub.
export OPENSSL_CONF=/etc/keyless/openssl-keyless.cnf
exec openssl s_server -accept 4433 -cert /etc/keyless/www.crt \
    -key keyless:keyserver.example.net:2407/www -www
# or: -key /etc/keyless/www.key   (a stub written by keyless-tool stub)
