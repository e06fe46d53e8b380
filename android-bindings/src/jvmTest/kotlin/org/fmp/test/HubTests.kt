// Kotlin tests of join and sync against a REAL hub: the `fmp` binary
// (path in the system property `fmp.cli`, set by run-jvm-tests.sh) runs
// `fmp serve` on loopback in its own process; the other device is the `fmp`
// CLI with its own store. They check the binding (records, the progress
// callback, error mapping, threads during a sync), not the sync logic
// already tested in Rust.
package org.fmp.test

import java.io.File
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.time.Instant
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.TimeoutException
import kotlin.concurrent.thread
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlin.test.fail
import org.fmp.ffi.*

// ---- the fmp CLI and a hub process ----------------------------------------

private val fmpCli: String by lazy {
    val path = System.getProperty("fmp.cli") ?: error("system property fmp.cli (path of the fmp binary) is not set")
    check(File(path).canExecute()) { "fmp.cli=$path is not an executable" }
    path
}

/** Runs `fmp ARGS…` to completion; its standard output, or an exception with its standard error. */
private fun fmp(vararg args: String, stdin: String? = null): String {
    val err = File.createTempFile("fmp-cli", ".err").also { it.deleteOnExit() }
    val p = ProcessBuilder(fmpCli, *args).redirectError(err).start()
    p.outputStream.use { out -> stdin?.let { out.write(it.toByteArray()) } }
    val out = p.inputStream.bufferedReader().readText()
    check(p.waitFor(60, TimeUnit.SECONDS)) { "fmp ${args.joinToString(" ")} did not finish" }
    check(p.exitValue() == 0) { "fmp ${args.joinToString(" ")} exited ${p.exitValue()}: ${err.readText()}" }
    return out
}

/** A hub: `fmp init` then `fmp serve --listen 127.0.0.1:0` in a child process, killed by `close()`. */
private class HubProcess : AutoCloseable {
    val dir = File(tempDir(), "hub")
    private val log = File(dir.parentFile, "hub.log")
    private val process: Process
    val url: String

    init {
        fmp("init", "--store", dir.path, "--name", "test-hub")
        process = ProcessBuilder(fmpCli, "serve", "--store", dir.path, "--listen", "127.0.0.1:0")
            .redirectError(log).start()
        try {
            val lines = LinkedBlockingQueue<String>()
            thread(isDaemon = true, name = "hub-stdout") {
                process.inputStream.bufferedReader().forEachLine { lines += it }
            }
            val first = lines.poll(30, TimeUnit.SECONDS)
                ?: error("fmp serve printed no address within 30 s: ${log.readText()}")
            url = first.removePrefix("listening on ").trim()
            check(url.startsWith("http://127.0.0.1:")) { "unexpected first line of fmp serve: $first" }
        } catch (e: Throwable) {
            process.destroyForcibly()
            throw e
        }
    }

    val port: Int get() = url.substringAfterLast(':').toInt()

    /** A one-time enrollment code for `fmps` (`fmp enroll-code`, run beside the serving hub). */
    fun enrollCode(vararg fmps: String): String =
        fmp("enroll-code", "--store", dir.path, *fmps.flatMap { listOf("--fmp", it) }.toTypedArray())
            .lineSequence().first().trim()

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS)
        }
    }
}

/**
 * A TCP proxy in front of the hub that, once `hold()` is called, keeps the
 * hub's next bytes back until `release()`: a sync then sits in a network
 * round trip for as long as the test wants.
 */
private class HoldingProxy(targetPort: Int) : AutoCloseable {
    private val loopback = InetAddress.getLoopbackAddress()
    private val server = ServerSocket(0, 50, loopback)
    @Volatile private var gate: CountDownLatch? = null
    /** Counted down when a response from the hub is being held back. */
    val holding = CountDownLatch(1)
    val url = "http://127.0.0.1:${server.localPort}"

    init {
        thread(isDaemon = true, name = "proxy-accept") {
            while (true) {
                val client = try { server.accept() } catch (e: IOException) { break }
                val upstream = Socket(loopback, targetPort)
                pump(client.getInputStream(), upstream.getOutputStream(), client, upstream, delayed = false)
                pump(upstream.getInputStream(), client.getOutputStream(), client, upstream, delayed = true)
            }
        }
    }

    fun hold() { gate = CountDownLatch(1) }

    fun release() { gate?.countDown(); gate = null }

    private fun pump(from: InputStream, to: OutputStream, a: Socket, b: Socket, delayed: Boolean) =
        thread(isDaemon = true, name = "proxy-pump") {
            val buf = ByteArray(16 * 1024)
            try {
                while (true) {
                    val n = from.read(buf)
                    if (n < 0) break
                    if (delayed) gate?.let { holding.countDown(); it.await() }
                    to.write(buf, 0, n)
                    to.flush()
                }
            } catch (e: IOException) {
                // a side closed: close both
            } finally {
                runCatching { a.close() }
                runCatching { b.close() }
            }
        }

    override fun close() { release(); server.close() }
}

/** A port nothing listens on (bound, then released). */
private fun closedPort(): Int = ServerSocket(0, 1, InetAddress.getLoopbackAddress()).use { it.localPort }

/** A progress callback that keeps every update. */
private class Recorder : SyncProgress {
    val updates = ConcurrentLinkedQueue<SyncUpdate>()
    override fun onProgress(update: SyncUpdate) { updates += update }
}

/** One line of canonical JSON, as another device's enumerator would record it. */
private fun otherDeviceJson(id: String) =
    """{"id":"$id","form":"dtm-fmp-flow","form_version":1,"fmp":"ML-HER","observed_at":"2020-06-15T07:00:00Z","direction":"outgoing",""" +
        """"transport":"truck","departure":{"country":"MLI","place":"Sikasso"},""" +
        """"next_destination":{"country":"BFA","place":"Bobo-Dioulasso"},"final_destination":{"country":"CIV"},""" +
        """"movement_type":"economic_long_term","people":{"adult_male":4,"adult_female":1,"minor_male":0,"minor_female":0},""" +
        """"vulnerable":{"under5":0,"elderly":0,"disability":0,"pregnant":0,"unaccompanied_children":0},"nationalities":{"MLI":5},"notes":"recorded on the other phone"}"""

// ---- tests -----------------------------------------------------------------

fun hubTests() {
    test("join a real hub, record, sync with progress, receive another device's submission") {
        HubProcess().use { hub ->
            newStore().use { phone ->
                val before = phone.status()
                assertEquals(null, before.hubId)
                assertEquals(null, before.lastSync)
                val mine = phone.record(bus())

                // The README example joins and syncs (the record above goes up).
                val first = assertNotNull(syncWithHub(phone, hub.url, hub.enrollCode("ML-HER")))
                assertTrue(first.sent >= 1uL, "sent: $first")
                val status = phone.status()
                assertNotNull(status.hubId)
                assertEquals("test-hub", status.hubName)
                assertEquals(hub.url, status.hubUrl)
                assertEquals(listOf("ML-HER"), status.fmps)
                assertEquals(0uL, status.pending)
                assertTrue(assertNotNull(status.lastSync).isAfter(Instant.now().minusSeconds(120)))
                assertEquals(emptyList(), status.quarantined)
                // Joining restricts recording to the FMPs granted.
                assertFailsWith<FmpException.Validation> { phone.record(bus(fmp = "ML-GOG")) }

                // Another device: the fmp CLI with its own store, joined to the same hub.
                val other = File(tempDir(), "other").path
                val theirs = "01890a5d-ac96-774b-bcce-0000000000aa"
                fmp("init", "--store", other, "--name", "other-phone")
                fmp("join", "--store", other, "--hub", hub.url, "--code", hub.enrollCode("ML-HER"))
                fmp("record", "--store", other, stdin = otherDeviceJson(theirs) + "\n")
                fmp("sync", "--store", other)

                val progress = Recorder()
                val summary = phone.sync(progress)
                assertTrue(summary.received >= 1uL, "received: $summary")
                assertTrue(summary.roundTrips >= 1u && summary.bytesReceived > 0uL, "summary: $summary")
                val updates = progress.updates.toList()
                assertTrue(updates.isNotEmpty(), "the progress callback was never called")
                assertTrue(updates.all { it.event == SyncEvent.RoundTrip }, "events: ${updates.map { it.event }}")
                assertEquals(summary.roundTrips, updates.last().totals.roundTrips)
                assertEquals(summary.received, updates.last().totals.received)
                assertEquals((1..updates.size).map { it.toUInt() }, updates.map { it.totals.roundTrips })

                val listed = phone.list(ListFilter()).map { it.submission }
                assertEquals(setOf(mine, theirs), listed.map { it.id }.toSet())
                val arrived = listed.first { it.id == theirs }
                assertEquals("recorded on the other phone", arrived.notes)
                assertEquals(Transport.TRUCK, arrived.transport)
                assertTrue(phone.history(theirs).all { it.author != phone.deviceId() })
            }
        }
    }

    test("errors: a refused code is Auth, an unreachable hub is Network, not joined is Auth") {
        HubProcess().use { hub ->
            newStore().use { phone ->
                val bad = assertFailsWith<FmpException.Auth> { phone.join(hub.url, "NOPE0-NOPE0") }
                assertTrue(bad.reason.contains("unknown_code"), "reason: ${bad.reason}")
                val code = hub.enrollCode("ML-HER")
                newStore().use { it.join(hub.url, code) }
                val used = assertFailsWith<FmpException.Auth> { phone.join(hub.url, code) }
                assertTrue(used.reason.contains("code_used"), "reason: ${used.reason}")
                assertFailsWith<FmpException.Auth> { phone.sync(null) }
                assertEquals(null, phone.status().hubId)
            }
        }
        newStore().use { phone ->
            val down = assertFailsWith<FmpException.Network> { phone.join("http://127.0.0.1:${closedPort()}", "ABCDE-FGHIJ") }
            assertTrue(down.reason.isNotBlank())
            assertFailsWith<FmpException.Other> { phone.join("ftp://example.org", "ABCDE-FGHIJ") }
        }
    }

    test("record and list go on while a sync waits on the network") {
        HubProcess().use { hub ->
            HoldingProxy(hub.port).use { proxy ->
                newStore().use { phone ->
                    phone.join(proxy.url, hub.enrollCode("ML-HER"))
                    phone.record(bus(at = "2020-06-14T09:00:00Z"))
                    val pool = Executors.newFixedThreadPool(2)
                    try {
                        proxy.hold()
                        val sync = pool.submit<SyncSummary> { phone.sync(Recorder()) }
                        assertTrue(proxy.holding.await(30, TimeUnit.SECONDS), "the sync never reached the hub")
                        // The sync now waits for the hub's answer. Quick calls must not wait for it.
                        val t0 = System.nanoTime()
                        val quick = pool.submit<Int> {
                            phone.record(bus(at = "2020-06-14T10:00:00Z"))
                            phone.status()
                            phone.list(ListFilter()).size
                        }
                        val n = try {
                            quick.get(10, TimeUnit.SECONDS)
                        } catch (e: TimeoutException) {
                            fail("record/status/list blocked for 10 s while a sync waited on the network")
                        }
                        assertEquals(2, n)
                        val ms = (System.nanoTime() - t0) / 1_000_000
                        assertFalse(sync.isDone, "the sync finished while the hub's answer was held")
                        proxy.release()
                        val summary = sync.get(60, TimeUnit.SECONDS)
                        assertTrue(summary.sent >= 1uL, "summary: $summary")
                        println("      record+status+list took $ms ms during the held round trip")
                        // The record made during the sync goes up with the next one.
                        assertTrue(phone.sync(null).sent >= 1uL)
                        assertEquals(0uL, phone.status().pending)
                    } finally {
                        proxy.release()
                        pool.shutdownNow()
                    }
                }
            }
        }
    }

    test("syncWith: a sync held mid round trip is cancelled from another thread; the next sync completes") {
        // The limits' defaults in Kotlin are those of `sync`.
        assertEquals(defaultSyncSettings(), SyncSettings())
        HubProcess().use { hub ->
            HoldingProxy(hub.port).use { proxy ->
                newStore().use { phone ->
                    phone.join(proxy.url, hub.enrollCode("ML-HER"))
                    val mine = phone.record(bus(at = "2020-06-14T09:00:00Z"))
                    // Long limits: without the cancel, this sync would wait minutes.
                    val patient = SyncSettings(retries = 8u, stallTimeoutSecs = 60u, requestTimeoutSecs = 120u)
                    val cancel = SyncCancel()
                    assertFalse(cancel.isCancelled())
                    val pool = Executors.newFixedThreadPool(2)
                    try {
                        proxy.hold()
                        val sync = pool.submit<SyncSummary> { phone.syncWith(Recorder(), patient, cancel) }
                        assertTrue(proxy.holding.await(30, TimeUnit.SECONDS), "the sync never reached the hub")
                        assertFalse(sync.isDone, "the sync finished while the hub's answer was held")
                        pool.submit { cancel.cancel() }.get(10, TimeUnit.SECONDS)
                        assertTrue(cancel.isCancelled())
                        val thrown = try {
                            sync.get(30, TimeUnit.SECONDS)
                            fail("a cancelled sync returned a summary")
                        } catch (e: java.util.concurrent.ExecutionException) {
                            e.cause
                        } catch (e: TimeoutException) {
                            fail("the cancelled sync was still running 30 s later")
                        }
                        val cancelled = assertNotNull(thrown as? FmpException.Cancelled, "not Cancelled: $thrown")
                        assertTrue(cancelled.reason.contains("next sync resumes"), "reason: ${cancelled.reason}")
                        proxy.release()
                        assertEquals(1uL, phone.status().pending, "the record waits for the next sync")
                        // A cancelled handle stops the next sync before it sends anything.
                        assertFailsWith<FmpException.Cancelled> { phone.syncWith(null, null, cancel) }
                        // Timeouts of 0 are refused.
                        assertFailsWith<FmpException.Other> {
                            phone.syncWith(null, SyncSettings(stallTimeoutSecs = 0u), null)
                        }

                        // A normal sync completes, and the hub has everything.
                        val summary = phone.sync(null)
                        assertTrue(summary.sent >= 1uL, "summary: $summary")
                        assertEquals(0uL, phone.status().pending)
                        val other = File(tempDir(), "other").path
                        fmp("init", "--store", other, "--name", "other-phone")
                        fmp("join", "--store", other, "--hub", hub.url, "--code", hub.enrollCode("ML-HER"))
                        fmp("sync", "--store", other)
                        val onHub = fmp("list", "--store", other)
                        assertTrue(onHub.contains(mine), "the hub lacks $mine; the other device lists: $onHub")
                    } finally {
                        proxy.release()
                        pool.shutdownNow()
                    }
                }
            }
        }
    }

    test("a progress callback that throws ends the sync with InternalException; the store survives") {
        HubProcess().use { hub ->
            newStore().use { phone ->
                phone.join(hub.url, hub.enrollCode("ML-HER"))
                val id = phone.record(bus())
                val e = assertFailsWith<InternalException> {
                    phone.sync(object : SyncProgress {
                        override fun onProgress(update: SyncUpdate) = throw IllegalStateException("UI gone")
                    })
                }
                assertTrue(e.message.orEmpty().isNotBlank())
                assertEquals(id, phone.get(id).submission.id)
                phone.sync(null)
                assertEquals(0uL, phone.status().pending)
            }
        }
    }
}
