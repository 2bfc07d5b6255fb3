// The official RocketMQ 5 Java client (Maven Central rocketmq-client-java) against
// `pocketmq serve`, the same scenarios as official.py: a Producer sending normal, FIFO
// (three message groups), delayed and transactional messages (commit, rollback,
// UNKNOWN resolved by check-back); a SimpleConsumer receiving each kind, changing one
// delivery's invisibility and acking everything; a PushConsumer failing each message
// once, then succeeding; a PushConsumer of a FIFO group keeping each message group's
// order while one message of each group fails once; and a SimpleConsumer filtering by
// an SQL92 expression over the properties.
//
// usage: java -cp 'lib/*' Official.java HOST:PORT PREFIX SENT.jsonl [--plain] [--json FILE]
//
// The client speaks its default, TLS, unless --plain: pocketmq serve, like Apache's
// proxy, takes TLS (with a certificate made at start unless --tls-cert gives one) and
// plaintext on one port. Against pocketmq serve, PREFIX-fifo-g is a FIFO
// group and the retry ladder starts at 1 s (run.sh); against Apache RocketMQ the topics
// (with their message types) and groups exist beforehand (tests/interop/run.sh). Every
// consumer starts before the first send, since Apache's new POP groups start at the
// latest message; delays are due on whole seconds, Apache's timer slots. Prints one
// PASS/FAIL line per check and writes what it sent, one JSON object per line, for
// check_store.py; --json writes each scenario's result for tests/interop/summary.py.
// Exits 1 when a check failed.

import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BooleanSupplier;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;

public class Official {
    static final int NORMAL = 20;
    static final String[] FIFO_GROUPS = {"group-a", "group-b", "group-c"};
    static final int FIFO_PER_GROUP = 10;
    static final long[] DELAYS_S = {3, 4, 5};
    static final int PUSHED = 3;
    static final String[] PUSH_GROUPS = {"push-a", "push-b", "push-c"};
    static final int PUSH_FIFO_PER_GROUP = 6;

    static int failed = 0;
    static final long START = System.nanoTime();
    /** Per scenario: whether every check passed, and seconds from the start to its last check. */
    static final Map<String, Boolean> passed = new LinkedHashMap<>();
    static final Map<String, Double> seconds = new HashMap<>();

    static synchronized boolean check(String scenario, boolean ok, String what) {
        System.out.println((ok ? "PASS" : "FAIL") + " java: " + what);
        System.out.flush();
        if (!ok) {
            failed++;
        }
        passed.merge(scenario, ok, Boolean::logicalAnd);
        seconds.put(scenario, (System.nanoTime() - START) / 1e9);
        return ok;
    }

    static String body(MessageView m) {
        ByteBuffer b = m.getBody().duplicate();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return new String(out, StandardCharsets.UTF_8);
    }

    static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    interface Receiver {
        void on(MessageView m) throws Exception;
    }

    static void receiveUntil(SimpleConsumer c, BooleanSupplier done, long seconds, Receiver on)
            throws Exception {
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        while (!done.getAsBoolean() && System.nanoTime() < deadline) {
            for (MessageView m : c.receive(32, Duration.ofSeconds(15))) {
                on.on(m);
                c.ack(m);
            }
        }
    }

    /** 0, 1, ..., n - 1. */
    static List<Integer> upTo(int n) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(i);
        }
        return out;
    }

    static boolean waitFor(BooleanSupplier cond, long seconds) throws InterruptedException {
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        while (!cond.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.sleep(100);
        }
        return cond.getAsBoolean();
    }

    public static void main(String[] args) throws Exception {
        String endpoint = args[0];
        String prefix = args[1];
        String outPath = args[2];
        List<String> flags = List.of(args).subList(3, args.length);
        // The client's default, TLS, unless told otherwise: both servers take TLS and
        // plaintext on one port.
        boolean tls = !flags.contains("--plain");
        int jsonAt = flags.indexOf("--json");
        String jsonPath = jsonAt >= 0 ? flags.get(jsonAt + 1) : null;
        Map<String, String> t = new LinkedHashMap<>();
        for (String k : new String[] {"normal", "fifo", "delay", "tx", "push", "pfifo", "sql"}) {
            t.put(k, prefix + "-" + k);
        }
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        ClientConfiguration config = ClientConfiguration.newBuilder()
                .setEndpoints(endpoint)
                .enableSsl(tls)
                .setRequestTimeout(Duration.ofSeconds(3))
                .build();
        List<String> sent = new ArrayList<>();
        List<String> asked = Collections.synchronizedList(new ArrayList<>());
        long[] firstAsk = {0};
        List<AutoCloseable> clients = new ArrayList<>();
        Producer producer = provider.newProducerBuilder()
                .setClientConfiguration(config)
                .setTopics(t.values().toArray(new String[0]))
                .setTransactionChecker(m -> {
                    synchronized (asked) {
                        if (asked.isEmpty()) {
                            firstAsk[0] = System.currentTimeMillis();
                        }
                        asked.add(body(m));
                    }
                    return TransactionResolution.COMMIT;
                })
                .build();
        clients.add(producer);

        class Sender {
            Message message(String kind, String body, String group, Long deliverAt) {
                MessageBuilder b = provider.newMessageBuilder()
                        .setTopic(t.get(kind))
                        .setBody(body.getBytes(StandardCharsets.UTF_8))
                        .setTag("tag-" + kind)
                        .setKeys("key-" + body)
                        .addProperty("origin", "java");
                if (group != null) {
                    b.setMessageGroup(group);
                }
                if (deliverAt != null) {
                    b.setDeliveryTimestamp(deliverAt);
                }
                return b.build();
            }

            void record(String kind, SendReceipt r, String body, String group, Long deliverAt,
                    String outcome) {
                sent.add("{\"client\": \"java\", \"kind\": " + json(kind) + ", \"topic\": "
                        + json(t.get(kind)) + ", \"message_id\": " + json(r.getMessageId().toString())
                        + ", \"body\": " + json(body) + ", \"tag\": " + json("tag-" + kind)
                        + ", \"keys\": [" + json("key-" + body) + "], \"origin\": \"java\", \"group\": "
                        + json(group) + ", \"deliver_at_ms\": " + (deliverAt == null ? "null" : deliverAt)
                        + ", \"outcome\": " + json(outcome) + "}");
            }

            /** Sends one message of `kind` (not transactional) and records it. */
            SendReceipt send(String kind, String body, String group, Long deliverAt) throws Exception {
                SendReceipt r = producer.send(message(kind, body, group, deliverAt));
                record(kind, r, body, group, deliverAt, null);
                return r;
            }

            /** Sends `perGroup` messages to each of `groups`, interleaved, bodies `java-GROUP-i`. */
            void sendGroups(String kind, String[] groups, int perGroup) throws Exception {
                for (int i = 0; i < perGroup; i++) {
                    for (String g : groups) {
                        send(kind, "java-" + g + "-" + i, g, null);
                    }
                }
            }
        }
        Sender s = new Sender();
        FilterExpression all = new FilterExpression("*", FilterExpressionType.TAG);
        java.util.function.Function<String, SimpleConsumer> simple = kind -> {
            try {
                SimpleConsumer c = provider.newSimpleConsumerBuilder()
                        .setClientConfiguration(config)
                        .setConsumerGroup(prefix + "-" + kind + "-g")
                        .setAwaitDuration(Duration.ofSeconds(5))
                        .setSubscriptionExpressions(Map.of(t.get(kind), all))
                        .build();
                clients.add(c);
                return c;
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        };

        try {
            // Every consumer first (see the header).
            SimpleConsumer delayConsumer = simple.apply("delay");
            SimpleConsumer c = simple.apply("normal");
            SimpleConsumer f = simple.apply("fifo");
            SimpleConsumer tx = simple.apply("tx");
            // An SQL92 filter over the properties (FilterExpressionType.SQL92).
            SimpleConsumer bySql = provider.newSimpleConsumerBuilder()
                    .setClientConfiguration(config)
                    .setConsumerGroup(prefix + "-sql-g")
                    .setAwaitDuration(Duration.ofSeconds(5))
                    .setSubscriptionExpressions(Map.of(t.get("sql"),
                            new FilterExpression("amount >= 50 AND TAGS = 'tag-sql'", FilterExpressionType.SQL92)))
                    .build();
            clients.add(bySql);
            Map<String, List<Integer>> deliveries = new ConcurrentHashMap<>();
            PushConsumer push = provider.newPushConsumerBuilder()
                    .setClientConfiguration(config)
                    .setConsumerGroup(prefix + "-push-g")
                    .setSubscriptionExpressions(Map.of(t.get("push"), all))
                    .setConsumptionThreadCount(4)
                    .setMessageListener(m -> {
                        // Each message fails once, then succeeds.
                        List<Integer> seen = deliveries.computeIfAbsent(m.getMessageId().toString(),
                                k -> Collections.synchronizedList(new ArrayList<>()));
                        seen.add(m.getDeliveryAttempt());
                        return seen.size() == 1 ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
                    })
                    .build();
            clients.add(push);
            // A FIFO group's PushConsumer: message 2 of each group fails once; the client
            // retries it in place, so each group still arrives in send order.
            Map<String, List<Integer>> pushOrder = new ConcurrentHashMap<>();
            Map<String, Integer> pushTries = new ConcurrentHashMap<>();
            PushConsumer pushFifo = provider.newPushConsumerBuilder()
                    .setClientConfiguration(config)
                    .setConsumerGroup(prefix + "-pfifo-g")
                    .setSubscriptionExpressions(Map.of(t.get("pfifo"), all))
                    .setConsumptionThreadCount(4)
                    .setMessageListener(m -> {
                        String[] parts = body(m).split("-");
                        String group = parts[1] + "-" + parts[2];
                        int i = Integer.parseInt(parts[3]);
                        if (i == 2 && pushTries.merge(group, 1, Integer::sum) == 1) {
                            return ConsumeResult.FAILURE;
                        }
                        pushOrder.computeIfAbsent(group, k -> Collections.synchronizedList(new ArrayList<>()))
                                .add(i);
                        return ConsumeResult.SUCCESS;
                    })
                    .build();
            clients.add(pushFifo);

            // Transactions first: the UNKNOWN one is checked back after the server's timeout.
            long txSent = System.currentTimeMillis();
            for (String[] pair : new String[][] {{"tx-commit", "commit"}, {"tx-rollback", "rollback"},
                    {"tx-unknown", null}}) {
                Transaction transaction = producer.beginTransaction();
                SendReceipt r = producer.send(s.message("tx", pair[0], null, null), transaction);
                check("transaction", r.getMessageId() != null,
                        pair[0] + ": a message id (" + r.getMessageId() + ")");
                if ("commit".equals(pair[1])) {
                    transaction.commit();
                } else if ("rollback".equals(pair[1])) {
                    transaction.rollback();
                }
                s.record("tx", r, pair[0], null, null, "rollback".equals(pair[1]) ? "rollback" : "commit");
            }

            // Delayed messages, due on whole seconds.
            Map<String, Long> due = new HashMap<>();
            long now = System.currentTimeMillis() / 1000;
            for (int i = 0; i < DELAYS_S.length; i++) {
                String body = "java-delay-" + i;
                long at = (now + DELAYS_S[i]) * 1000;
                due.put(s.send("delay", body, null, at).getMessageId().toString(), at);
            }
            // One more, recalled before its time (RocketMQ 5.3's recallMessage): never delivered.
            SendReceipt recalled = producer.send(s.message("delay", "java-delay-recalled", null,
                    (now + DELAYS_S[0]) * 1000));
            String recallHandle = recalled.getRecallHandle();
            String recalledId = recalled.getMessageId().toString();
            check("delay", recallHandle != null && !recallHandle.isEmpty(), "a delayed send carries a recall handle");
            check("delay", recalledId.equals(producer.recallMessage(t.get("delay"), recallHandle).getMessageId().toString()),
                    "recallMessage answers the recalled message's id");
            Map<String, Long> arrivals = new ConcurrentHashMap<>();
            Exception[] delayError = {null};
            Thread delayThread = new Thread(() -> {
                try {
                    receiveUntil(delayConsumer, () -> arrivals.size() >= due.size(), 20,
                            m -> arrivals.putIfAbsent(m.getMessageId().toString(), System.currentTimeMillis()));
                } catch (Exception e) {
                    delayError[0] = e;
                }
            });
            delayThread.start();

            // The PushConsumer's messages.
            List<String> pushed = new ArrayList<>();
            for (int i = 0; i < PUSHED; i++) {
                pushed.add(s.send("push", "java-push-" + i, null, null).getMessageId().toString());
            }
            s.sendGroups("pfifo", PUSH_GROUPS, PUSH_FIFO_PER_GROUP);

            // Normal and FIFO.
            Map<String, String> normal = new HashMap<>();
            for (int i = 0; i < NORMAL; i++) {
                String body = "java-normal-" + i;
                normal.put(s.send("normal", body, null, null).getMessageId().toString(), body);
            }
            s.sendGroups("fifo", FIFO_GROUPS, FIFO_PER_GROUP);

            // SimpleConsumer: everything once, one delivery's invisibility changed, all acked.
            Map<String, MessageView> got = new HashMap<>();
            List<String> wrong = new ArrayList<>();
            boolean[] changed = {false};
            receiveUntil(c, () -> got.size() >= NORMAL, 30, m -> {
                String id = m.getMessageId().toString();
                if (got.containsKey(id)) {
                    wrong.add(id + " delivered twice");
                }
                got.put(id, m);
                if (!changed[0]) {
                    // The client keeps the new receipt handle in the view, for the ack after.
                    c.changeInvisibleDuration(m, Duration.ofSeconds(30));
                    changed[0] = true;
                }
                String b = body(m);
                if (!(b.equals(normal.get(id)) && m.getTag().orElse("").equals("tag-normal")
                        && new ArrayList<>(m.getKeys()).equals(List.of("key-" + b))
                        && "java".equals(m.getProperties().get("origin")) && m.getDeliveryAttempt() == 1)) {
                    wrong.add(b + ": tag " + m.getTag() + " keys " + m.getKeys() + " properties "
                            + m.getProperties() + " attempt " + m.getDeliveryAttempt());
                }
            });
            check("normal", got.keySet().equals(normal.keySet()) && wrong.isEmpty(), "SimpleConsumer received "
                    + got.size() + "/" + NORMAL + " normal messages once each with their fields, acking each "
                    + "(the changed one with its new handle) " + (wrong.isEmpty() ? "" : wrong));

            // FIFO: order per message group.
            Map<String, List<Integer>> order = new HashMap<>();
            for (String g : FIFO_GROUPS) {
                order.put(g, new ArrayList<>());
            }
            List<String> ungrouped = new ArrayList<>();
            receiveUntil(f, () -> order.values().stream().mapToInt(List::size).sum()
                    >= FIFO_PER_GROUP * FIFO_GROUPS.length, 30, m -> {
                String[] parts = body(m).split("-");
                String group = parts[1] + "-" + parts[2];
                order.get(group).add(Integer.parseInt(parts[3]));
                if (!m.getMessageGroup().orElse("").equals(group)) {
                    ungrouped.add(body(m) + ": " + m.getMessageGroup());
                }
            });
            check("fifo", ungrouped.isEmpty(), "FIFO messages carry their message group"
                    + (ungrouped.isEmpty() ? "" : ": " + ungrouped));
            List<Integer> expected = upTo(FIFO_PER_GROUP);
            for (String g : FIFO_GROUPS) {
                check("fifo", order.get(g).equals(expected), "FIFO " + g + " received in send order: " + order.get(g));
            }

            // Delays: not early, and by due + 1 s.
            delayThread.join();
            check("delay", delayError[0] == null, "the delayed messages' receives raised "
                    + (delayError[0] == null ? "nothing" : delayError[0].toString()));
            check("delay", !arrivals.containsKey(recalledId), "the recalled delayed message was never delivered");
            arrivals.remove(recalledId);
            check("delay", arrivals.size() == due.size(), arrivals.size() + "/" + due.size() + " delayed messages received");
            for (Map.Entry<String, Long> e : arrivals.entrySet()) {
                long late = e.getValue() - due.get(e.getKey());
                check("delay", late >= -50 && late <= 1000, "delayed message received " + late + " ms after its due time");
            }

            // Transactions: commit and check-back commit delivered, rollback never.
            Map<String, Integer> bodies = new ConcurrentHashMap<>();
            receiveUntil(tx, () -> bodies.keySet().containsAll(Set.of("tx-commit", "tx-unknown")), 30,
                    m -> bodies.merge(body(m), 1, Integer::sum));
            check("transaction", Integer.valueOf(1).equals(bodies.get("tx-commit")), "committed transaction delivered once");
            check("transaction", Integer.valueOf(1).equals(bodies.get("tx-unknown")), "UNKNOWN transaction delivered once "
                    + "after check-back (" + asked + ", " + (firstAsk[0] == 0 ? 0 : firstAsk[0] - txSent)
                    + " ms after send)");
            check("transaction", asked.equals(List.of("tx-unknown")), "only the UNKNOWN transaction was checked back: " + asked);
            check("transaction", !bodies.containsKey("tx-rollback"), "rolled-back transaction never delivered");

            // The SQL92 consumer takes the amounts of at least 50; "abc" is no number.
            String[] amounts = {"5", "500", "50", "abc"};
            for (int i = 0; i < amounts.length; i++) {
                Message m = provider.newMessageBuilder()
                        .setTopic(t.get("sql"))
                        .setBody(("java-sql-" + i).getBytes(StandardCharsets.UTF_8))
                        .setTag("tag-sql")
                        .setKeys("key-java-sql-" + i)
                        .addProperty("amount", amounts[i])
                        .build();
                producer.send(m);
            }
            List<String> took = Collections.synchronizedList(new ArrayList<>());
            receiveUntil(bySql, () -> took.size() >= 2, 20, m -> took.add(body(m)));
            receiveUntil(bySql, () -> false, 5, m -> took.add(body(m)));
            List<String> sorted = new ArrayList<>(took);
            Collections.sort(sorted);
            check("sql", sorted.equals(List.of("java-sql-1", "java-sql-2")),
                    "SQL92 filter amount >= 50 took " + sorted + " of amounts 5, 500, 50, abc");

            // PushConsumer: each redelivered exactly once, then acked.
            waitFor(() -> pushed.stream().allMatch(
                    id -> deliveries.getOrDefault(id, List.of()).size() >= 2), 30);
            Thread.sleep(1500); // a third delivery would show up here
            for (String id : pushed) {
                check("push-retry", deliveries.getOrDefault(id, List.of()).equals(List.of(1, 2)),
                        "PushConsumer: failed once, redelivered once: attempts " + deliveries.get(id));
            }

            // The FIFO group's PushConsumer: every group whole and in order.
            waitFor(() -> pushOrder.values().stream().mapToInt(List::size).sum()
                    >= PUSH_FIFO_PER_GROUP * PUSH_GROUPS.length, 40);
            Thread.sleep(500); // a repeat would show up here
            List<Integer> inOrder = upTo(PUSH_FIFO_PER_GROUP);
            for (String g : PUSH_GROUPS) {
                check("push-fifo", inOrder.equals(pushOrder.get(g)), "FIFO PushConsumer, " + g
                        + " (message 2 failed once) consumed in send order: " + pushOrder.get(g));
            }
        } finally {
            Collections.reverse(clients);
            for (AutoCloseable client : clients) {
                try {
                    client.close();
                } catch (Exception e) {
                    System.err.println("java: close: " + e);
                }
            }
            try (PrintWriter out = new PrintWriter(outPath, StandardCharsets.UTF_8)) {
                for (String line : sent) {
                    out.println(line);
                }
            }
            if (jsonPath != null) {
                List<String> rows = new ArrayList<>();
                for (Map.Entry<String, Boolean> e : passed.entrySet()) {
                    rows.add("{\"scenario\": " + json(e.getKey()) + ", \"result\": \""
                            + (e.getValue() ? "PASS" : "FAIL") + "\", \"seconds\": "
                            + String.format("%.1f", seconds.get(e.getKey())) + "}");
                }
                try (PrintWriter out = new PrintWriter(jsonPath, StandardCharsets.UTF_8)) {
                    out.println("[" + String.join(", ", rows) + "]");
                }
            }
        }
        System.out.println("java: " + (failed == 0 ? "all checks passed" : failed + " checks failed"));
        System.exit(failed == 0 ? 0 : 1);
    }
}
