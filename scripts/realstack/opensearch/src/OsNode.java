// A single OpenSearch 2.19 node with HTTP, for the project's tests: the
// second search engine beside Elasticsearch 7.17 (scripts/realstack/es). The
// server jar and its plugins (Netty transport and HTTP, analysis-common,
// painless) come from Maven Central (scripts/realstack/opensearch/pom.xml).
// Node's constructor that takes classpath plugins is protected, hence this
// subclass; in 2.19 it takes the plugin classes themselves (PluginInfo
// wrappers came with 3.x). Bootstrap's checks (which refuse root) are not
// run, and there is no security plugin: plain HTTP, a test node only.
//
// Usage: java -cp <lib/*>:<classes> OsNode <home> <http.port> <transport.port> [key=value ...]
// Extra key=value pairs are node settings (e.g. thread_pool.write.queue_size=2).
// It prints "started" once the node answers, and exits on SIGTERM after
// closing the node (flushing its data to <home>/data).
//
// As on the Elasticsearch node, ingest-common is not on the class path;
// SetPlugin adds the one processor the tests use, "set" (field, value: a
// constant).

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.ingest.AbstractProcessor;
import org.opensearch.ingest.ConfigurationUtils;
import org.opensearch.ingest.IngestDocument;
import org.opensearch.ingest.Processor;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.IngestPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

public final class OsNode extends Node {
    private OsNode(Environment env) {
        super(env, List.of(Netty4Plugin.class, CommonAnalysisPlugin.class, PainlessPlugin.class, SetPlugin.class), true);
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
            System.err.println("usage: OsNode <home> <http.port> <transport.port> [key=value ...]");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        for (String sub : List.of("config", "data", "logs")) {
            Files.createDirectories(home.resolve(sub));
        }
        String name = "os-" + args[1];
        Settings.Builder settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "logpipe-test")
            .put("node.name", name)
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            // A test disk may be nearly full; never turn indices read-only for it.
            .put("cluster.routing.allocation.disk.threshold_enabled", "false")
            .put("action.auto_create_index", "true");
        for (int i = 3; i < args.length; i++) {
            String kv = args[i];
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                System.err.println("bad setting (want key=value): " + kv);
                System.exit(2);
            }
            settings.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings.build(), Map.of(), home.resolve("config"), () -> name);
        OsNode node = new OsNode(env);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(30, TimeUnit.SECONDS)) {
                    System.err.println("node did not close within 30s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "os-node-shutdown"));
        try {
            node.start();
        } catch (Exception e) {
            // The node's own threads would keep the JVM alive: exit (the
            // shutdown hook closes what did start).
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("started");
        System.out.flush();
        closed.await();
    }
}
