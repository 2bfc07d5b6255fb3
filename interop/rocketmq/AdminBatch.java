/*
 * Runs several mqadmin commands in one JVM (a JVM start with RocketMQ's 150 jars costs
 * seconds on a busy 2-core machine, and one scenario run creates a few dozen topics and
 * groups). rocketmq.sh compiles it once and runs it as
 *
 *   javac -cp 'lib/<version>/*' -d <dir> AdminBatch.java
 *   java -cp '<dir>:lib/<version>/*' AdminBatch < commands
 *
 * Each non-blank stdin line that does not start with '#' is one mqadmin command line,
 * split on whitespace (no quoting), e.g.
 *
 *   updateTopic -n 127.0.0.1:9876 -c DefaultCluster -t orders -a +message.type=FIFO
 *
 * mqadmin reports failures by printing a stack trace and returning normally, so a command
 * counts as failed when its output has an exception in it, or, for the commands that print
 * one on success (updateTopic, updateSubGroup), when that line is missing. Exit status: the
 * number of failed commands (0 = all succeeded).
 *
 * With -Dadminbatch.stream=true each command runs as soon as its line arrives and its
 * "ok  " / "FAIL" line is flushed at once, so a test session can keep one JVM and create
 * topics and groups on demand (`rocketmq.sh admin-server`).
 */

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

public class AdminBatch {
    public static void main(String[] ignored) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        if (Boolean.getBoolean("adminbatch.stream")) {
            for (String line; (line = in.readLine()) != null; ) {
                line = line.trim();
                if (!line.isEmpty() && !line.startsWith("#")) {
                    run(List.<String[]>of(line.split("\\s+")));
                }
            }
            System.exit(0);
        }
        List<String[]> commands = new ArrayList<>();
        for (String line; (line = in.readLine()) != null; ) {
            line = line.trim();
            if (!line.isEmpty() && !line.startsWith("#")) {
                commands.add(line.split("\\s+"));
            }
        }
        System.exit(Math.min(run(commands), 100));
    }

    /** Runs each command, prints its ok/FAIL line; returns how many failed. */
    static int run(List<String[]> commands) {
        PrintStream realOut = System.out;
        PrintStream realErr = System.err;
        int failed = 0;
        for (String[] args : commands) {
            ByteArrayOutputStream captured = new ByteArrayOutputStream();
            PrintStream capture = new PrintStream(captured, true, StandardCharsets.UTF_8);
            System.setOut(capture);
            System.setErr(capture);
            try {
                org.apache.rocketmq.tools.command.MQAdminStartup.main0(args, null);
            } catch (Throwable t) {
                t.printStackTrace(capture);
            } finally {
                System.setOut(realOut);
                System.setErr(realErr);
            }
            String output = captured.toString(StandardCharsets.UTF_8);
            boolean ok = !output.contains("Exception");
            if (args[0].equals("updateTopic")) {
                ok &= output.contains("create topic to ");
            } else if (args[0].equals("updateSubGroup")) {
                ok &= output.contains("create subscription group to ");
            }
            realOut.printf("%s mqadmin %s%n", ok ? "ok  " : "FAIL", String.join(" ", args));
            if (!ok || Boolean.getBoolean("adminbatch.verbose")) {
                realOut.print(output.endsWith("\n") || output.isEmpty() ? output : output + "\n");
            }
            if (!ok) {
                failed++;
            }
        }
        realOut.flush();
        return failed;
    }
}
