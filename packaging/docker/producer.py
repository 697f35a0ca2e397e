"""The example producer of docker-compose.yml: publishes COUNT persistent
messages (0: forever, one a second) to the exchange "orders" with
publisher confirms. AMQP_URL says where (amqp://app:app-secret@coney:5672/)."""
import json
import os
import time

import pika

url = os.environ.get("AMQP_URL", "amqp://app:app-secret@coney:5672/%2F")
count = int(os.environ.get("COUNT", "0"))
interval = float(os.environ.get("INTERVAL", "1"))

conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
n = 0
while count == 0 or n < count:
    n += 1
    body = json.dumps({"order": n, "at": time.time()}).encode()
    ch.basic_publish("orders", "order.created", body,
                     pika.BasicProperties(delivery_mode=2, content_type="application/json"))
    print("sent order %d" % n, flush=True)
    if count == 0 or n < count:
        time.sleep(interval)
conn.close()
