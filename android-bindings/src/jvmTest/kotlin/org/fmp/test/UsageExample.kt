// The usage example of README.md, verbatim between the BEGIN/END markers
// (run-jvm-tests.sh fails if they differ). JvmTests.kt runs it.
package org.fmp.test

import java.io.File
import java.time.Instant
import org.fmp.ffi.*
import org.fmp.messagesByField

// BEGIN EXAMPLE
fun recordAtHeremakono(storeDir: File): List<StoredRecord> =
    FmpStore.init(storeDir.path, "enumerator-heremakono").use { store ->
        val bus = SubmissionRecord(
            fmp = "ML-HER",
            observedAt = Instant.parse("2020-06-14T09:30:00Z"),
            direction = Direction.INCOMING,
            transport = Transport.BUS,
            departure = Place(country = "BFA", place = "Bobo-Dioulasso"),
            nextDestination = Place(country = "MLI", place = "Sikasso"),
            finalDestination = Place(country = "MLI"),
            movementType = MovementType.SEASONAL,
            people = People(adultMale = 30u, adultFemale = 2u, minorMale = 1u, minorFemale = 0u),
            vulnerable = Vulnerable(),
            nationalities = mapOf("BFA" to 31u, "MLI" to 2u),
        )
        val id = store.record(bus)
        store.edit(id, """{"notes": "counted twice at the barrier"}""")

        try {
            store.record(bus.copy(nationalities = mapOf("BFA" to 1u)))
        } catch (e: FmpException.Validation) {
            // Mark each failing field on screen: e.messagesByField["nationalities"]…
            println("refused: ${e.messagesByField.keys}")
        }

        store.list(ListFilter(fmp = "ML-HER", from = "2020-06-01", to = "2020-06-30"))
    }
// END EXAMPLE
