// A single Elasticsearch 7.17 node with HTTP, for the project's tests and the
// real-stack demo. The server jar and the Netty transport plugin come from
// Maven Central (scripts/realstack/es/pom.xml); Node's constructor that takes
// classpath plugins is protected, hence this subclass. Bootstrap's checks
// (which refuse root) are not run: this is a test node, never a production one.
//
// Usage: java -cp <lib/*>:<classes> EsNode <home> <http.port> <transport.port> [key=value ...]
// Extra key=value pairs are node settings (e.g. thread_pool.write.queue_size=2).
// It prints "started" once the node answers, and exits on SIGTERM after
// closing the node (flushing its data to <home>/data).
//
// Elastic does not publish the ingest-common module, so the node has no
// ingest processors of its own; SetPlugin adds one, "set" (field, value: a
// constant), enough to show a document went through an ingest pipeline.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.ingest.AbstractProcessor;
import org.elasticsearch.ingest.ConfigurationUtils;
import org.elasticsearch.ingest.IngestDocument;
import org.elasticsearch.ingest.Processor;
import org.elasticsearch.plugins.IngestPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.Netty4Plugin;

public final class EsNode extends Node {
    private EsNode(Environment env) {
        super(env, List.of(Netty4Plugin.class, SetPlugin.class), true);
    }

    /** The "set" ingest processor: sets field to a constant value. */
    public static final class SetPlugin extends Plugin implements IngestPlugin {
        @Override
        public Map<String, Processor.Factory> getProcessors(Processor.Parameters parameters) {
            return Map.of("set", (factories, tag, description, config) -> {
                String field = ConfigurationUtils.readStringProperty("set", tag, config, "field");
                Object value = ConfigurationUtils.readObject("set", tag, config, "value");
                return new AbstractProcessor(tag, description) {
                    @Override
                    public IngestDocument execute(IngestDocument doc) {
                        doc.setFieldValue(field, value);
                        return doc;
                    }

                    @Override
                    public String getType() {
                        return "set";
                    }
                };
            });
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: EsNode <home> <http.port> <transport.port> [key=value ...]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("config"));
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Settings.Builder b = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "logpipe-test")
            .put("node.name", "es-" + args[1])
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            // A test disk may be nearly full; never turn indices read-only for it.
            .put("cluster.routing.allocation.disk.threshold_enabled", "false")
            .put("action.auto_create_index", "true");
        for (int i = 3; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("bad setting (want key=value): " + args[i]);
                System.exit(2);
            }
            b.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        Environment env = InternalSettingsPreparer.prepareEnvironment(b.build(), Map.of(), home.resolve("config"), () -> "es-" + args[1]);
        EsNode node = new EsNode(env);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }));
        node.start();
        System.out.println("started");
        System.out.flush();
        closed.await();
    }
}
