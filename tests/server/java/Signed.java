// Sends one message to a pocketmq-serve that checks credentials, signed with the given
// access key and secret by the official Java client.
//
// usage: java -cp 'lib/*' Signed.java HOST:PORT TOPIC ACCESS_KEY SECRET_KEY [--tls]
// Without --tls the client is told to speak plaintext (its default is TLS). Exits 0
// when the message was stored, 3 when the server refused it.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.StaticSessionCredentialsProvider;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;

public class Signed {
    public static void main(String[] args) {
        String endpoint = args[0];
        String topic = args[1];
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        ClientConfiguration config = ClientConfiguration.newBuilder()
                .setEndpoints(endpoint)
                .enableSsl(args.length > 4 && args[4].equals("--tls"))
                .setCredentialProvider(new StaticSessionCredentialsProvider(args[2], args[3]))
                .setRequestTimeout(Duration.ofSeconds(3))
                .build();
        int status;
        Producer producer = null;
        try {
            producer = provider.newProducerBuilder().setClientConfiguration(config).setTopics(topic).build();
            SendReceipt r = producer.send(provider.newMessageBuilder()
                    .setTopic(topic)
                    .setBody("signed by java".getBytes(StandardCharsets.UTF_8))
                    .build());
            System.out.println("java: stored " + r.getMessageId());
            status = 0;
        } catch (Exception e) {
            System.out.println(("java: refused: " + e.getClass().getSimpleName() + ": " + e.getMessage()).split("\n")[0]);
            status = 3;
        } finally {
            if (producer != null) {
                try {
                    producer.close();
                } catch (Exception e) {
                    // the outcome is already decided
                }
            }
        }
        System.exit(status);
    }
}
