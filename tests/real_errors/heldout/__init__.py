"""
The held-out set: real exceptions from client libraries retrykit has no rules for.

Chosen on 2026-12-07, before any signal was written for them (issue 22), and kept apart from the
libraries the rules were written from (``tests/real_errors/test_*.py``): smtplib and aiosmtplib
against an aiosmtpd server, ftplib against pyftpdlib, paho-mqtt against a Mosquitto the tests
start, nats-py against a nats-server the tests start, websockets against its own server, paramiko
against its own SSH server, pymemcache against a memcached-protocol server the tests start, and
xmlrpc.client against the standard library's XML-RPC server. No rule may name these libraries'
modules or classes: what they get right must come from generic signals.

paramiko's cases were written after the signals and measured before any change for them (the
unseen check): 2 of 12 right before the generic signals, 7 of 12 with them as first written; three
phrases were then added ("prohibited", "no authentication methods", "unable to connect") and
"host key" among the class-name words, for 11 of 12.
"""
