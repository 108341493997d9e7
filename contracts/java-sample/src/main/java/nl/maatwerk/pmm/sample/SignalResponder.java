package nl.maatwerk.pmm.sample;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cloudevents.CloudEvent;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.core.message.Encoding;
import io.cloudevents.kafka.CloudEventDeserializer;
import io.cloudevents.kafka.CloudEventSerializer;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A sample consumer/responder for an organisation connected to PMM.
 *
 * <p>It reads the organisation's {@code client.properties} (the file PMM hands out, in the
 * librdkafka/kcat format; a file in the Java client's own format works too), follows {@code
 * pmm.signalen.assigned.<org>} with a consumer group of its own and answers each signal on {@code
 * pmm.signalen.responses.<org>}: {@code received} to a new signal, {@code in_progress} to a
 * request to follow up. Answers are CloudEvents in binary mode (attributes in {@code ce_*}
 * headers, the data as the record's value), the default of the CloudEvents Java SDK. An offset
 * is committed only after the answer was acknowledged by the broker (at least once); a
 * redelivered signal gets an answer with the same event id, which PMM applies once.
 *
 * <pre>
 * java -cp ... nl.maatwerk.pmm.sample.SignalResponder --properties client.properties \
 *     --org uwv --oin 00000001234567890000 [--group uwv.pmm-signals.java] [--max 10] [--idle 60]
 * </pre>
 */
public final class SignalResponder {
  static final String ASSIGNED = "nl.maatwerk.signal.assigned";
  static final String FOLLOWUP = "nl.maatwerk.signal.followup_requested";
  static final String RESPONSE = "nl.maatwerk.signal.response";
  private static final Pattern ORG = Pattern.compile("^[a-z0-9][a-z0-9-]{1,29}$");
  private static final Pattern OIN = Pattern.compile("^\\d{20}$");
  private static final ObjectMapper JSON = new ObjectMapper();

  private SignalResponder() {}

  public static void main(String[] argv) throws Exception {
    Map<String, String> args = parse(argv);
    String org = required(args, "org");
    if (!ORG.matcher(org).matches()) {
      fail("--org is the organisation code in lowercase (e.g. uwv, gm0363)");
    }
    String oin = args.getOrDefault("oin", System.getenv().getOrDefault("PMM_OIN", ""));
    if (!OIN.matcher(oin).matches()) {
      fail("--oin (or PMM_OIN) is your organisation's OIN: 20 digits");
    }
    Properties connection = clientProperties(Path.of(required(args, "properties")));
    String group = args.getOrDefault("group", org + ".pmm-signals.java");
    int max = Integer.parseInt(args.getOrDefault("max", "0")); // 0: no limit
    Duration idle = Duration.ofSeconds(Long.parseLong(args.getOrDefault("idle", "0"))); // 0: none
    URI source = URI.create("urn:nld:oin:" + oin + ":systeem:pmm-java-sample");
    int answered = run(connection, org, group, source, max, idle);
    System.out.println("answered " + answered + " signal event(s)");
  }

  static int run(
      Properties connection, String org, String group, URI source, int max, Duration idle) {
    String assigned = "pmm.signalen.assigned." + org;
    String responses = "pmm.signalen.responses." + org;
    Properties consumerConfig = new Properties();
    consumerConfig.putAll(connection);
    consumerConfig.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    consumerConfig.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    consumerConfig.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    consumerConfig.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    consumerConfig.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, CloudEventDeserializer.class);
    Properties producerConfig = new Properties();
    producerConfig.putAll(connection);
    producerConfig.put(ProducerConfig.ACKS_CONFIG, "all");
    producerConfig.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    producerConfig.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    producerConfig.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, CloudEventSerializer.class);
    producerConfig.put(CloudEventSerializer.ENCODING_CONFIG, Encoding.BINARY);

    int answered = 0;
    Instant lastSeen = Instant.now();
    try (KafkaConsumer<String, CloudEvent> consumer = new KafkaConsumer<>(consumerConfig);
        KafkaProducer<String, CloudEvent> producer = new KafkaProducer<>(producerConfig)) {
      Runtime.getRuntime().addShutdownHook(new Thread(consumer::wakeup));
      consumer.subscribe(List.of(assigned));
      while (max == 0 || answered < max) {
        ConsumerRecords<String, CloudEvent> records = consumer.poll(Duration.ofMillis(500));
        if (records.isEmpty()) {
          if (!idle.isZero() && Instant.now().isAfter(lastSeen.plus(idle))) {
            break;
          }
          continue;
        }
        lastSeen = Instant.now();
        for (ConsumerRecord<String, CloudEvent> record : records) {
          CloudEvent answer = answer(record.value(), org, source);
          if (answer != null) {
            // Acknowledged by the broker before the signal's offset is committed.
            producer.send(new ProducerRecord<>(responses, answer.getSubject(), answer)).get();
            System.out.println(
                "answered " + answer.getSubject() + " (" + record.value().getType() + ")");
            answered++;
          }
        }
        consumer.commitSync();
      }
    } catch (org.apache.kafka.common.errors.WakeupException stopped) {
      // SIGTERM/Ctrl-C: stop after the current batch
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException("the broker refused the answer: " + e.getCause(), e);
    }
    return answered;
  }

  /** The answer to a signal or to a request to follow up; null for other event types. */
  static CloudEvent answer(CloudEvent incoming, String org, URI source) {
    String status;
    if (ASSIGNED.equals(incoming.getType())) {
      status = "received";
    } else if (FOLLOWUP.equals(incoming.getType())) {
      status = "in_progress";
    } else {
      return null;
    }
    JsonNode data;
    try {
      data = JSON.readTree(incoming.getData() == null ? new byte[0] : incoming.getData().toBytes());
    } catch (IOException e) {
      throw new IllegalArgumentException("event " + incoming.getId() + ": data is not JSON", e);
    }
    String signalId = data.path("signal_id").asText(incoming.getSubject());
    ObjectNode response = JSON.createObjectNode();
    response.put("signal_id", signalId);
    response.put("organisation", org);
    response.put("status", status);
    // Derived from the incoming event: a redelivered signal gets the same answer id.
    UUID id =
        UUID.nameUUIDFromBytes(
            ("response:" + incoming.getId() + ":" + status).getBytes(StandardCharsets.UTF_8));
    byte[] body;
    try {
      body = JSON.writeValueAsBytes(response);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    return CloudEventBuilder.v1()
        .withId(id.toString())
        .withSource(source)
        .withType(RESPONSE)
        .withSubject(signalId)
        .withTime(OffsetDateTime.now(ZoneOffset.UTC))
        .withDataContentType("application/json")
        .withData(body)
        .build();
  }

  /**
   * The Java client's settings from an organisation's client.properties.
   *
   * <p>PMM's file is in the librdkafka/kcat format ({@code sasl.username}, {@code sasl.password},
   * {@code ssl.ca.location}); those become {@code sasl.jaas.config} and a PEM trust store. A
   * file in the Java format ({@code sasl.jaas.config}) is taken as it is.
   */
  static Properties clientProperties(Path path) throws IOException {
    Properties file = new Properties();
    try (InputStream in = Files.newInputStream(path)) {
      file.load(in);
    }
    Map<String, String> values = new HashMap<>();
    for (String name : file.stringPropertyNames()) {
      values.put(name, file.getProperty(name).trim());
    }
    Properties config = new Properties();
    String username = values.remove("sasl.username");
    String password = values.remove("sasl.password");
    String caFile = values.remove("ssl.ca.location");
    config.putAll(values);
    String protocol = values.getOrDefault("security.protocol", "PLAINTEXT").toUpperCase();
    if (protocol.startsWith("SASL_") && !values.containsKey("sasl.jaas.config")) {
      if (username == null || password == null) {
        fail(path + ": " + protocol + " needs sasl.username and sasl.password");
      }
      String mechanism = values.getOrDefault("sasl.mechanism", "SCRAM-SHA-512");
      String module =
          "PLAIN".equals(mechanism)
              ? "org.apache.kafka.common.security.plain.PlainLoginModule"
              : "org.apache.kafka.common.security.scram.ScramLoginModule";
      config.put("sasl.mechanism", mechanism);
      config.put(
          "sasl.jaas.config",
          module
              + " required username=\""
              + escape(username)
              + "\" password=\""
              + escape(password)
              + "\";");
    }
    if (caFile != null && protocol.endsWith("SSL")) {
      config.put("ssl.truststore.type", "PEM");
      config.put("ssl.truststore.location", caFile);
    }
    return config;
  }

  private static String escape(String value) {
    return value.replace("\\", "\\\\").replace("\"", "\\\"");
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String name = argv[i];
      if (!name.startsWith("--") || i + 1 >= argv.length) {
        fail("usage: --properties FILE --org CODE --oin OIN [--group ID] [--max N] [--idle S]");
      }
      args.put(name.substring(2), argv[++i]);
    }
    return args;
  }

  private static String required(Map<String, String> args, String name) {
    String value = args.get(name);
    if (value == null || value.isBlank()) {
      fail("--" + name + " is required");
    }
    return value;
  }

  private static void fail(String message) {
    System.err.println("pmm-java-sample: " + message);
    System.exit(2);
  }
}
