"""The example consumer of docker-compose.yml: prints what arrives on the
queue "orders.created" and acks it; stops after COUNT messages (0: never).
AMQP_URL says where (amqp://app:app-secret@coney:5672/)."""
import os

import pika

url = os.environ.get("AMQP_URL", "amqp://app:app-secret@coney:5672/%2F")
count = int(os.environ.get("COUNT", "0"))

conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.basic_qos(prefetch_count=10)
seen = 0
for method, props, body in ch.consume("orders.created", inactivity_timeout=None):
    print("got %s" % body.decode(), flush=True)
    ch.basic_ack(method.delivery_tag)
    seen += 1
    if count and seen >= count:
        break
ch.cancel()
conn.close()
