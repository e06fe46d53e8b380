// Kotlin tests of the fmp binding, run on the host JVM against the host build
// of libfmp_ffi by run-jvm-tests.sh. They check the binding (every field
// crossing intact, error mapping, panics, threads, `use {}`), not the logic
// already tested in Rust.
package org.fmp.test

import java.io.File
import java.nio.file.Files
import java.time.Instant
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlin.test.fail
import org.fmp.ffi.*
import org.fmp.messagesByField

// ---- a minimal runner ------------------------------------------------------

private val failures = mutableListOf<String>()
private var passed = 0

private fun test(name: String, body: () -> Unit) {
    val t0 = System.nanoTime()
    try {
        body()
        passed++
        println("PASS  $name (${(System.nanoTime() - t0) / 1_000_000} ms)")
    } catch (e: Throwable) {
        failures += name
        println("FAIL  $name\n      ${e::class.qualifiedName}: ${e.message}")
    }
}

private fun tempDir(): File = Files.createTempDirectory("fmp-jvm-test").toFile().also { it.deleteOnExit() }

private fun newStore(): FmpStore = FmpStore.init(File(tempDir(), "store").path, "jvm-test")

// ---- fixtures --------------------------------------------------------------

/** A valid submission at Heremakono, with room for overrides. */
private fun bus(
    fmp: String = "ML-HER",
    at: String = "2020-06-14T09:30:00Z",
    direction: Direction = Direction.INCOMING,
) = SubmissionRecord(
    fmp = fmp,
    observedAt = Instant.parse(at),
    direction = direction,
    transport = Transport.BUS,
    departure = Place(country = "BFA", place = "Bobo-Dioulasso"),
    nextDestination = Place(country = "MLI", place = "Sikasso"),
    finalDestination = Place(country = "MLI"),
    movementType = MovementType.SEASONAL,
    people = People(adultMale = 30u, adultFemale = 2u, minorMale = 1u, minorFemale = 0u),
    vulnerable = Vulnerable(),
    nationalities = mapOf("BFA" to 31u, "MLI" to 2u),
)

/** Every field set, each to a value distinct from its neighbours' (so a swap shows). */
private val everyField = SubmissionRecord(
    id = "01890a5d-ac96-774b-bcce-b302099a8057",
    form = "dtm-fmp-flow",
    formVersion = 1u,
    fmp = "ML-GOG",
    observedAt = Instant.parse("2020-06-21T17:45:12.250Z"),
    direction = Direction.OUTGOING,
    transport = Transport.TRICYCLE,
    departure = Place(country = "GIN", place = "Kankan"),
    nextDestination = Place(country = "SEN", place = "Tambacounda"),
    finalDestination = Place(country = "MRT", place = null),
    movementType = MovementType.SHORT_TERM_LOCAL,
    people = People(adultMale = 10u, adultFemale = 5u, minorMale = 4u, minorFemale = 3u),
    vulnerable = Vulnerable(under5 = 2u, elderly = 1u, disability = 3u, pregnant = 4u, unaccompaniedChildren = 5u),
    nationalities = mapOf("GIN" to 12u, "CIV" to 6u, "SEN" to 4u),
    notes = "Groupe arrivé à l'aube — « contrôle » ✓ 🚌\nligne 2",
)

/** The same submission as canonical JSON, written by hand (not by the binding). */
private const val EVERY_FIELD_JSON = """{
  "id": "01890a5d-ac96-774b-bcce-b302099a8058",
  "form": "dtm-fmp-flow", "form_version": 1,
  "fmp": "ML-GOG",
  "observed_at": "2020-06-21T17:45:12.250Z",
  "direction": "outgoing",
  "transport": "tricycle",
  "departure": {"country": "GIN", "place": "Kankan"},
  "next_destination": {"country": "SEN", "place": "Tambacounda"},
  "final_destination": {"country": "MRT"},
  "movement_type": "short_term_local",
  "people": {"adult_male": 10, "adult_female": 5, "minor_male": 4, "minor_female": 3},
  "vulnerable": {"under5": 2, "elderly": 1, "disability": 3, "pregnant": 4, "unaccompanied_children": 5},
  "nationalities": {"GIN": 12, "CIV": 6, "SEN": 4},
  "notes": "Groupe arrivé à l'aube — « contrôle » ✓ 🚌\nligne 2"
}"""

// ---- tests -----------------------------------------------------------------

fun main() {
    test("README usage example runs") {
        val listed = recordAtHeremakono(File(tempDir(), "example"))
        assertEquals(1, listed.size)
        assertEquals("counted twice at the barrier", listed[0].submission.notes)
    }

    test("init, close with use {}, reopen: same device") {
        val dir = File(tempDir(), "store").path
        val device = FmpStore.init(dir, "phone-1").use { it.deviceId() }
        assertEquals(36, device.length)
        FmpStore.open(dir).use { assertEquals(device, it.deviceId()) }
        assertFailsWith<FmpException.Other> { FmpStore.init(dir, "again") }
        assertFailsWith<FmpException.Other> { FmpStore.open(File(tempDir(), "nothing-here").path) }
    }

    test("record a valid submission, get it back") {
        newStore().use { store ->
            val id = store.record(bus())
            val got = store.get(id)
            assertEquals(bus().copy(id = id), got.submission)
            assertEquals(null, got.review)
            assertEquals(false, got.deleted)
            assertEquals(emptyList(), store.conflicts(id))
        }
    }

    test("every field survives Kotlin -> Rust -> Kotlin") {
        newStore().use { store ->
            val id = store.record(everyField)
            assertEquals(everyField.id, id)
            assertEquals(everyField, store.get(id).submission)
            // Twice through: what Kotlin got back is accepted again unchanged.
            val again = store.get(id).submission.copy(id = null)
            val id2 = store.record(again)
            assertEquals(again.copy(id = id2), store.get(id2).submission)
        }
    }

    test("every field matches hand-written canonical JSON in both directions") {
        newStore().use { store ->
            // JSON -> Rust -> Kotlin: the lifted record equals the Kotlin-built one.
            val fromJson = store.recordJson(EVERY_FIELD_JSON)
            assertEquals(everyField.copy(id = fromJson), store.get(fromJson).submission)
            // Kotlin -> Rust -> JSON: the lowered record serializes like the hand-written JSON.
            // (A pair of fields swapped both ways would pass a round trip, not this.)
            val fromKotlin = store.record(everyField)
            assertEquals(
                store.getJson(fromJson).replace(fromJson, "ID"),
                store.getJson(fromKotlin).replace(fromKotlin, "ID"),
            )
            for (expected in listOf(
                "\"adult_male\":10", "\"adult_female\":5", "\"minor_male\":4", "\"minor_female\":3",
                "\"under5\":2", "\"elderly\":1", "\"disability\":3", "\"pregnant\":4",
                "\"unaccompanied_children\":5", "\"direction\":\"outgoing\"", "\"transport\":\"tricycle\"",
                "\"movement_type\":\"short_term_local\"", "\"fmp\":\"ML-GOG\"",
                "\"departure\":{\"country\":\"GIN\",\"place\":\"Kankan\"}",
                "\"next_destination\":{\"country\":\"SEN\",\"place\":\"Tambacounda\"}",
                "\"final_destination\":{\"country\":\"MRT\"}",
            )) {
                assertTrue(store.getJson(fromKotlin).contains(expected), "getJson lacks $expected")
            }
        }
    }

    test("invalid submissions: Validation names every failing field, nothing stored") {
        newStore().use { store ->
            val bad = bus().copy(
                people = People(adultMale = 0u, adultFemale = 0u, minorMale = 0u, minorFemale = 0u),
                departure = Place(country = "XXX"),
            )
            val e = assertFailsWith<FmpException.Validation> { store.record(bad) }
            val fields = e.fields.map { it.field }
            for (f in listOf("people", "nationalities", "departure.country")) {
                assertTrue(f in fields, "no error for $f in $fields")
            }
            assertTrue(e.messagesByField.values.all { msgs -> msgs.all { it.isNotBlank() } })
            assertEquals(0, store.list(ListFilter()).size)
        }
    }

    test("malformed input: Validation names the field (JSON path, typed id)") {
        newStore().use { store ->
            val badJson = EVERY_FIELD_JSON.replace("\"adult_female\": 5", "\"adult_female\": -5")
            val e1 = assertFailsWith<FmpException.Validation> { store.recordJson(badJson) }
            assertEquals(listOf("people.adult_female"), e1.fields.map { it.field })
            val e2 = assertFailsWith<FmpException.Validation> { store.recordJson("{not json") }
            assertEquals(1, e2.fields.size)
            val e3 = assertFailsWith<FmpException.Validation> { store.record(bus().copy(id = "not-a-uuid")) }
            assertEquals(listOf("id"), e3.fields.map { it.field })
            assertEquals(0, store.list(ListFilter()).size)
        }
    }

    test("edit, review, history") {
        newStore().use { store ->
            val id = store.record(bus())
            val edited = store.edit(id, """{"notes": "corrigé", "people": {"adult_male": 29}, "nationalities": {"BFA": 30}}""")
            assertEquals("corrigé", edited.submission.notes)
            assertEquals(29u, edited.submission.people.adultMale)
            assertEquals(mapOf("BFA" to 30u, "MLI" to 2u), edited.submission.nationalities)
            assertEquals(edited, store.get(id))
            // A malformed patch changes nothing.
            assertFailsWith<FmpException.Validation> { store.edit(id, """{"people": {"adult_male": "many"}}""") }
            assertFailsWith<FmpException.Other> { store.edit(id, "{oops") }
            assertEquals(edited, store.get(id))

            val reviewed = store.review(id, ReviewStatus.HAS_ISSUES, "recompter les mineurs")
            val review = assertNotNull(reviewed.review)
            assertEquals(ReviewStatus.HAS_ISSUES, review.status)
            assertEquals("recompter les mineurs", review.comment)
            assertEquals(store.deviceId(), review.by)
            assertTrue(review.at.isAfter(Instant.now().minusSeconds(60)))

            val history = store.history(id)
            assertEquals(listOf("record", "edit", "review"), history.map { it.op })
            assertTrue(history.all { it.author == store.deviceId() && it.hash.length == 64 })
            assertEquals(history.map { it.seq }.sorted(), history.map { it.seq })
        }
    }

    test("list with filters, delete") {
        newStore().use { store ->
            val a = store.record(bus(fmp = "ML-HER", at = "2020-06-14T09:30:00Z", direction = Direction.INCOMING))
            val b = store.record(bus(fmp = "ML-GOG", at = "2020-06-20T12:00:00Z", direction = Direction.OUTGOING))
            val c = store.record(bus(fmp = "ML-HER", at = "2020-07-02T08:00:00Z", direction = Direction.OUTGOING))
            fun ids(f: ListFilter) = store.list(f).map { it.submission.id }
            assertEquals(listOf(a, b, c), ids(ListFilter()))
            assertEquals(listOf(a, c), ids(ListFilter(fmp = "ML-HER")))
            assertEquals(listOf(a, b), ids(ListFilter(from = "2020-06-01", to = "2020-06-30")))
            assertEquals(listOf(b), ids(ListFilter(from = "2020-06-20", to = "2020-06-20")))
            assertEquals(listOf(b, c), ids(ListFilter(direction = Direction.OUTGOING)))
            assertEquals(listOf(c), ids(ListFilter(fmp = "ML-HER", direction = Direction.OUTGOING)))
            store.review(b, ReviewStatus.APPROVED, "")
            assertEquals(listOf(b), ids(ListFilter(review = ReviewFilter.Is(ReviewStatus.APPROVED))))
            assertEquals(listOf(a, c), ids(ListFilter(review = ReviewFilter.NotReviewed)))
            store.delete(a)
            assertEquals(listOf(b, c), ids(ListFilter()))
            val all = store.list(ListFilter(includeDeleted = true))
            assertEquals(listOf(a, b, c), all.map { it.submission.id })
            assertTrue(all[0].deleted)
            assertFailsWith<FmpException.Other> { store.delete(a) }
            val e = assertFailsWith<FmpException.Validation> { store.list(ListFilter(from = "2020-13-01")) }
            assertEquals(listOf("from"), e.fields.map { it.field })
        }
    }

    test("errors: NotFound carries the id, a malformed id is Other") {
        newStore().use { store ->
            val missing = "01890a5d-ac96-774b-bcce-000000000000"
            val e = assertFailsWith<FmpException.NotFound> { store.get(missing) }
            assertEquals(missing, e.id)
            assertFailsWith<FmpException.NotFound> { store.history(missing) }
            assertFailsWith<FmpException.NotFound> { store.edit(missing, "{}") }
            assertFailsWith<FmpException.Other> { store.get("../../etc/passwd") }
        }
    }

    test("a Rust panic becomes InternalException; the JVM and the store survive") {
        newStore().use { store ->
            val id = store.record(bus())
            val e = assertFailsWith<InternalException> { debugPanic("boom from Kotlin") }
            assertTrue(e.message!!.contains("boom from Kotlin"), "message: ${e.message}")
            // Twice, and from another thread, to show nothing is left broken.
            val t = Thread { assertFailsWith<InternalException> { debugPanic("again") } }
            t.start(); t.join()
            assertEquals(bus().copy(id = id), store.get(id).submission)
        }
    }

    test("a closed store throws, it does not crash") {
        val store = newStore()
        store.close()
        try {
            store.deviceId()
            fail("a closed store answered")
        } catch (e: IllegalStateException) {
            // expected: uniffi refuses calls on a destroyed object
        }
    }

    test("calls from many threads at once") {
        newStore().use { store ->
            val threads = 8
            val perThread = 6
            val pool = Executors.newFixedThreadPool(threads + 2)
            val start = CountDownLatch(1)
            val ids = ConcurrentLinkedQueue<String>()
            val errors = ConcurrentLinkedQueue<Throwable>()
            repeat(threads) { t ->
                pool.submit {
                    start.await()
                    try {
                        repeat(perThread) { i ->
                            val id = store.record(bus(at = "2020-06-%02dT10:%02d:00Z".format(1 + t, i)))
                            ids += id
                            store.edit(id, """{"notes": "thread $t item $i"}""")
                            store.get(id)
                        }
                    } catch (e: Throwable) { errors += e }
                }
            }
            repeat(2) {
                pool.submit {
                    start.await()
                    try {
                        repeat(30) { store.list(ListFilter(fmp = "ML-HER")); countries() }
                        assertFailsWith<FmpException.NotFound> { store.get("01890a5d-ac96-774b-bcce-000000000000") }
                    } catch (e: Throwable) { errors += e }
                }
            }
            start.countDown()
            pool.shutdown()
            assertTrue(pool.awaitTermination(120, TimeUnit.SECONDS), "threads did not finish")
            errors.firstOrNull()?.let { throw it }
            assertEquals(threads * perThread, ids.toSet().size)
            val listed = store.list(ListFilter())
            assertEquals(threads * perThread, listed.size)
            assertTrue(listed.all { it.submission.notes.startsWith("thread ") })
        }
    }

    test("reference data: countries in French and English, code lists with labels") {
        val all = countries()
        assertTrue(all.size > 240, "only ${all.size} countries")
        val mli = all.first { it.code == "MLI" }
        assertEquals("Mali", mli.nameEn)
        assertEquals("Mali", mli.nameFr)
        val deu = all.first { it.code == "DEU" }
        assertEquals("Germany", deu.nameEn)
        assertEquals("Allemagne", deu.nameFr)
        assertEquals(MovementType.values().toList(), movementTypes().map { it.value })
        assertEquals(Transport.values().toList(), transportModes().map { it.value })
        assertEquals("À pied", transportModes().first { it.value == Transport.FOOT }.labelFr)
        assertEquals(Direction.values().toList(), directions().map { it.value })
        assertTrue(movementTypes().all { it.labelEn.isNotBlank() && it.labelFr.isNotBlank() })
    }

    test("reference data: the store's FMP registry (Mali's nine FMPs)") {
        newStore().use { store ->
            val fmps = store.fmps()
            assertEquals(9, fmps.size, "FMPs: ${fmps.map { it.code }}")
            val her = fmps.first { it.code == "ML-HER" }
            assertEquals("Heremakono", her.name)
            assertEquals("MLI", her.country)
            assertEquals(FmpKind.ENTRY_EXIT, her.kind)
            assertEquals(FmpKind.TRANSIT, fmps.first { it.code == "ML-WAB" }.kind)
        }
    }

    println("\n$passed passed, ${failures.size} failed")
    if (failures.isNotEmpty()) {
        println("failed: ${failures.joinToString()}")
        System.exit(1)
    }
    System.exit(0)
}
