// Hand-written helpers over the generated bindings (package org.fmp.ffi).
package org.fmp

import org.fmp.ffi.FmpException

/**
 * The messages of a refused submission grouped by field path
 * (`people`, `nationalities`, `vulnerable.under5`…), to mark each field on screen.
 */
val FmpException.Validation.messagesByField: Map<String, List<String>>
    get() = fields.groupBy({ it.field }, { it.message })
