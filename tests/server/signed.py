"""Sends one message to a pocketmq-serve that checks credentials, signed with the
given access key and secret by the official Python client.

usage: signed.py HOST:PORT TOPIC ACCESS_KEY SECRET_KEY
Exits 0 when the message was stored, 3 when the server refused it.
"""

import sys

from rocketmq import ClientConfiguration, Credentials, Message, Producer


def main() -> int:
    endpoint, topic, ak, sk = sys.argv[1:5]
    producer = Producer(ClientConfiguration(endpoint, Credentials(ak, sk)), (topic,))
    try:
        producer.startup()
        msg = Message()
        msg.topic = topic
        msg.body = b"signed by python"
        receipt = producer.send(msg)
        print(f"python: stored {receipt.message_id}")
        return 0
    except Exception as e:  # the client raises its own exception types
        print(f"python: refused: {type(e).__name__}: {e}".splitlines()[0])
        return 3
    finally:
        try:
            producer.shutdown()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
