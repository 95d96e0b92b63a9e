// What a Java client on the node sees through a node port, for the tests.
//     java JavaProbe.java tcp|udp|udp-connected HOST PORT  ->  "PEER-IP:PEER-PORT ANSWER"
// or "error EXCEPTION" (exit 1). Java opens dual-stack AF_INET6 sockets by
// default and reaches an IPv4 address through ::ffff:a.b.c.d: the kernel then
// runs the IPv6 socket hooks (connect6), never connect4. The first line of
// output says which socket family Java used, so a test can tell that it
// exercised that path ("family inet6") and not an AF_INET socket.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.channels.DatagramChannel;
import java.nio.charset.StandardCharsets;

public class JavaProbe {
    public static void main(String[] args) throws Exception {
        String mode = args[0];
        InetAddress host = InetAddress.getByName(args[1]);
        int port = Integer.parseInt(args[2]);
        // A socket Java would open for any address: INET6 unless
        // -Djava.net.preferIPv4Stack=true or the kernel has no IPv6.
        try (DatagramChannel probe = DatagramChannel.open()) {
            InetSocketAddress local = (InetSocketAddress) probe.bind(null).getLocalAddress();
            System.out.println("family " + (local.getAddress() instanceof Inet6Address ? "inet6" : "inet"));
        }
        try {
            switch (mode) {
                case "tcp" -> tcp(host, port);
                case "udp" -> udp(host, port, false);
                case "udp-connected" -> udp(host, port, true);
                default -> throw new IllegalArgumentException("mode: " + mode);
            }
        } catch (java.io.IOException e) {
            System.out.println("error " + e.getClass().getSimpleName());
            System.exit(1);
        }
    }

    static void tcp(InetAddress host, int port) throws java.io.IOException {
        try (Socket s = new Socket()) {
            s.setSoTimeout(3000);
            s.connect(new InetSocketAddress(host, port), 3000);
            String line = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8)).readLine();
            System.out.println(s.getInetAddress().getHostAddress() + ":" + s.getPort() + " " + line.strip());
        }
    }

    static void udp(InetAddress host, int port, boolean connected) throws java.io.IOException {
        try (DatagramSocket s = new DatagramSocket()) {
            s.setSoTimeout(3000);
            byte[] hello = "hello".getBytes(StandardCharsets.UTF_8);
            if (connected) {
                s.connect(host, port);
                s.send(new DatagramPacket(hello, hello.length));
            } else {
                s.send(new DatagramPacket(hello, hello.length, host, port));
            }
            DatagramPacket in = new DatagramPacket(new byte[2048], 2048);
            s.receive(in);
            String line = new String(in.getData(), 0, in.getLength(), StandardCharsets.UTF_8);
            System.out.println(in.getAddress().getHostAddress() + ":" + in.getPort() + " " + line.strip());
        }
    }
}
